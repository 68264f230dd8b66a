# Attacks from the adversarial review (issue 11) on Invoke-RequiemExec: outputs that are not regular files, hard
# links to host files, and malformed requests. Each test reproduces the attack against the built module.
BeforeAll {
    . (Join-Path $PSScriptRoot 'TestSetup.ps1')
    $script:Dir = New-TestDirectory
    $script:Ws = Join-Path $Dir 'ws'
    New-Item -ItemType Directory -Path $Ws | Out-Null
    $script:SavedCas = $env:REQUIEM_CAS
    $env:REQUIEM_CAS = Join-Path $Dir 'cas'
    $script:IsRoot = $IsLinux -and ((& id -u) -eq '0')

    function script:New-Req {
        param([string] $Command, [string[]] $Argv = @(), [hashtable] $Policy = @{}, [hashtable] $Extra = @{})
        $r = @{ command = $Command; argv = $Argv; workspace_root = $Ws; policy = $Policy; timeout_ms = 20000; max_output_bytes = 65536 }
        foreach ($k in $Extra.Keys) { $r[$k] = $Extra[$k] }
        $r
    }

    function script:Invoke-Bounded {
        # Runs Invoke-RequiemExec in another runspace of this process and gives up after $Seconds, so a hang is a
        # test failure instead of a stuck test run. Returns the result (or the error record).
        param([hashtable] $Request, [int] $Seconds = 60)
        $ps = [powershell]::Create()
        $null = $ps.AddScript({
            param($modulePath, $cas, $req)
            $env:REQUIEM_CAS = $cas
            Import-Module $modulePath
            try { Invoke-RequiemExec -Request $req -ErrorAction Stop -WarningAction SilentlyContinue } catch { $_ }
        }).AddArgument($ModulePath).AddArgument($env:REQUIEM_CAS).AddArgument($Request)
        $handle = $ps.BeginInvoke()
        $finished = $handle.AsyncWaitHandle.WaitOne([TimeSpan]::FromSeconds($Seconds))
        if (-not $finished) {
            $null = $ps.BeginStop($null, $null)
            throw "Invoke-RequiemExec did not return within $Seconds s (hung)"
        }
        $out = $ps.EndInvoke($handle)
        $ps.Dispose()
        return $out[-1]
    }

    function script:Get-RunCgroup {
        # The run-* cgroups that exist now, with whether any process is in them.
        foreach ($d in Get-ChildItem /sys/fs/cgroup -Directory -Recurse -Depth 3 -Filter 'run-*' -ErrorAction Ignore) {
            $procs = try { [IO.File]::ReadAllText((Join-Path $d.FullName 'cgroup.procs')).Trim() } catch { 'gone' }
            [pscustomobject]@{ Path = $d.FullName; Empty = ($procs -eq '') }
        }
    }
}

AfterAll {
    $env:REQUIEM_CAS = $SavedCas
    Remove-Item -Recurse -Force $script:Dir -ErrorAction Ignore
}

Describe 'Outputs that are not regular files are skipped, never read, and said so' -Skip:(-not $IsLinux) {
    It 'returns promptly with a FIFO, a character device and a 1 GiB sparse file among the outputs' {
        if (-not $IsRoot) { Set-ItResult -Skipped -Because 'mknod needs root'; return }
        # The sandbox drops CAP_MKNOD, so a sandboxed root command can no longer make the device itself; the files are made
        # beside the command (as a command run with filesystem 'host' by an earlier step could leave them) and capture
        # must still refuse them.
        $o = Join-Path $Ws 'o'
        Remove-Item -Recurse -Force $o -ErrorAction Ignore
        & /bin/sh -c "mkdir -p '$o' && mkfifo '$o/fifo' && mknod '$o/zero' c 1 5 && truncate -s 1G '$o/sparse'"
        $LASTEXITCODE | Should -Be 0
        $sw = [Diagnostics.Stopwatch]::StartNew()
        $r = Invoke-Bounded (New-Req '/bin/sh' @('-c', 'echo kept > o/kept; mknod o/zero2 c 1 5') -Extra @{ outputs = @('o') })
        $sw.Stop()
        $r | Should -BeOfType Requiem.Engine.Execution.ExecResult
        $sw.Elapsed.TotalSeconds | Should -BeLessThan 30
        $r.OutputFiles.Path | Should -Be @('o/kept')
        $skipped = @{}; foreach ($s in $r.SkippedOutputs) { $skipped[$s.Path] = $s.Reason }
        $skipped['o/fifo'] | Should -Be 'not_regular_file'
        $skipped['o/zero'] | Should -Be 'not_regular_file'
        $skipped['o/sparse'] | Should -Be 'too_large'
        ($r.DeterminismConfidence.Reasons -join "`n") | Should -Match "o/fifo' was not captured: not_regular_file"
        # The contract document carries the same list (and the result digest covers it).
        $doc = $r.ToJson() | ConvertFrom-Json
        @($doc.skipped_outputs).Count | Should -Be 3
        Test-Path -LiteralPath (Join-Path $o 'zero2') | Should -BeFalse -Because 'a sandboxed root command has no CAP_MKNOD'
        ($doc.skipped_outputs | Where-Object path -eq 'o/zero').detail | Should -Be 'a character device'
        # Nothing near 1 GiB went into the store.
        $big = Get-ChildItem (Join-Path $env:REQUIEM_CAS 'objects') -Recurse -File | Where-Object Length -gt 1MB
        $big | Should -BeNullOrEmpty
    }

    It 'skips a FIFO declared directly as an output (no hang in open)' {
        $r = Invoke-Bounded (New-Req '/usr/bin/mkfifo' @('pipe') -Extra @{ outputs = @('pipe') })
        $r.ExitCode | Should -Be 0
        $r.OutputFiles | Should -BeNullOrEmpty
        $r.MissingOutputs | Should -BeNullOrEmpty
        $r.SkippedOutputs[0].Path | Should -Be 'pipe'
        $r.SkippedOutputs[0].Reason | Should -Be 'not_regular_file'
        $r.SkippedOutputs[0].Detail | Should -Match 'FIFO'
    }

    It 'returns when the command itself is a FIFO (its digest is not read from the pipe)' {
        $fifo = Join-Path $Ws 'cmd-fifo'
        Remove-Item -LiteralPath $fifo -ErrorAction Ignore
        & mkfifo $fifo
        $r = Invoke-Bounded (New-Req './cmd-fifo') -Seconds 30
        $r | Should -BeOfType Requiem.Engine.Execution.ExecResult
        $r.ExitCode | Should -Not -Be 0
        $r.CommandDigest | Should -BeNullOrEmpty
    }

    It 'caps each output at policy.max_output_file_bytes (the cap itself is captured, one byte more is not)' {
        $req = New-Req '/bin/sh' @('-c', 'head -c 100 /dev/zero > at-cap; head -c 101 /dev/zero > over-cap') `
            -Policy @{ max_output_file_bytes = 100 } -Extra @{ outputs = @('at-cap', 'over-cap') }
        $r = Invoke-RequiemExec -Request $req -WarningAction SilentlyContinue
        $r.OutputFiles.Path | Should -Be @('at-cap')
        $r.OutputFiles[0].Bytes | Should -Be 100
        $r.SkippedOutputs.Path | Should -Be @('over-cap')
        $r.SkippedOutputs[0].Reason | Should -Be 'too_large'
        $r.SkippedOutputs[0].Detail | Should -Match '101 bytes; max_output_file_bytes is 100'
        $r.Request.Policy.MaxOutputFileBytes | Should -Be 100
    }

    It 'captures a file larger than the in-memory size (5 MiB, streamed from the checked descriptor) byte for byte' {
        $r = Invoke-RequiemExec -Request (New-Req '/bin/sh' @('-c', 'head -c 5242880 /dev/urandom > big.bin') -Extra @{ outputs = @('big.bin') })
        $r.OutputFiles[0].Bytes | Should -Be 5242880
        $r.OutputFiles[0].Digest | Should -Be (Get-RequiemDigest -LiteralPath (Join-Path $Ws 'big.bin') -Domain Cas).Hash
        $r.SkippedOutputs | Should -BeNullOrEmpty
        (Get-RequiemCasObject -Hash $r.OutputFiles[0].Digest -Cas $env:REQUIEM_CAS).Size | Should -Be 5242880   # verified on read
    }

    It 'has the cap as -MaxOutputFileBytes and refuses a cap out of range' {
        $r = Invoke-RequiemExec -FilePath /bin/sh -ArgumentList '-c', 'echo 123456 > f' -WorkingDirectory $Ws -CapturePath f -MaxOutputFileBytes 3 -WarningAction SilentlyContinue
        $r.SkippedOutputs[0].Reason | Should -Be 'too_large'
        { Invoke-RequiemExec -Request (New-Req '/bin/true' -Policy @{ max_output_file_bytes = -1 }) -ErrorAction Stop } |
            Should -Throw -ErrorId 'InvalidRequestLimit,Requiem.PowerShell.InvokeRequiemExecCommand'
    }

    It 'keeps request digests of requests that do not set the cap (the field is not added)' {
        $r = Invoke-RequiemExec -Request (New-Req '/bin/true')
        (Get-Content -Raw (Join-Path $env:REQUIEM_CAS "objects/$($r.RequestBlobDigest.Substring(0,2))/$($r.RequestBlobDigest)")) |
            Should -Not -Match 'max_output_file_bytes'
        $r.ToJson() | Should -Not -Match 'skipped_outputs'
    }
}

Describe 'Hard links among outputs do not capture host files' -Skip:(-not $IsLinux) {
    It 'skips an output that is a hard link to a file outside the workspace (<Case>)' -ForEach @(
        @{ Case = 'declared file'; Outputs = @('stolen'); Path = 'stolen' }
        @{ Case = 'file in a declared folder'; Outputs = @('d'); Path = 'd/stolen' }
    ) {
        # The "host secret" is a file outside the workspace with a hard link inside it, as a command that could reach it
        # (or a process outside the sandbox) would leave it. The link is made here so the test does not depend on what
        # the sandbox lets the command see; the defence is in the capture.
        $secret = Join-Path $Dir 'host-secret.txt'
        Set-Content -LiteralPath $secret -Value 'host secret'
        New-Item -ItemType Directory -Force -Path (Join-Path $Ws 'd') | Out-Null
        New-Item -ItemType HardLink -Path (Join-Path $Ws $Path) -Target $secret | Out-Null
        $r = Invoke-RequiemExec -Request (New-Req '/bin/true' -Extra @{ outputs = $Outputs }) -WarningAction SilentlyContinue
        $r.ExitCode | Should -Be 0
        $r.OutputFiles | Should -BeNullOrEmpty
        $r.SkippedOutputs.Path | Should -Be @($Path)
        $r.SkippedOutputs[0].Reason | Should -Be 'hard_link'
        $r.SkippedOutputs[0].Detail | Should -Match '^2 hard links'
        # The secret's bytes are not in the store.
        $digest = (Get-RequiemDigest -LiteralPath $secret).Hash
        Test-Path (Join-Path $env:REQUIEM_CAS "objects/$($digest.Substring(0,2))/$digest*") | Should -BeFalse
        Remove-Item -LiteralPath (Join-Path $Ws $Path)
    }

    It 'still captures an ordinary file written by the command' {
        $r = Invoke-RequiemExec -Request (New-Req '/bin/sh' @('-c', 'echo mine > own.txt') -Extra @{ outputs = @('own.txt') })
        $r.OutputFiles.Path | Should -Be @('own.txt')
        $r.SkippedOutputs | Should -BeNullOrEmpty
    }
}

Describe 'Malformed requests: typed errors, nothing runs, no cgroup left behind' -Skip:(-not $IsLinux) {
    BeforeAll { $script:Marker = Join-Path $Ws 'ran.marker' }
    BeforeEach { Remove-Item -LiteralPath $Marker -ErrorAction Ignore }

    It 'refuses max_processes above PID_MAX_LIMIT with InvalidRequestLimit and accepts the limit itself' {
        $runsBefore = @(Get-RunCgroup).Path
        { Invoke-RequiemExec -Request (New-Req '/bin/sh' @('-c', "touch '$Marker'") -Policy @{ max_processes = 4194305 }) -ErrorAction Stop } |
            Should -Throw -ErrorId 'InvalidRequestLimit,Requiem.PowerShell.InvokeRequiemExecCommand'
        Test-Path $Marker | Should -BeFalse
        $r = Invoke-RequiemExec -Request (New-Req '/bin/sh' @('-c', "touch '$Marker'") -Policy @{ max_processes = 4194304 }) -WarningAction SilentlyContinue
        $r.ExitCode | Should -Be 0
        Start-Sleep -Milliseconds 500
        # A run-* cgroup that appeared meanwhile and is still there, empty, was leaked (other test runs on this machine
        # may have live ones, which hold processes).
        @(Get-RunCgroup | Where-Object { $_.Empty -and $_.Path -notin $runsBefore }) | Should -BeNullOrEmpty
    }

    It 'removes the run cgroup when the sandbox cannot be set up' {
        if (-not $IsRoot -or (Get-RequiemHealth).Isolator -ne 'requiem-launch') { Set-ItResult -Skipped -Because 'needs root and the requiem-launch isolator'; return }
        $runsBefore = @(Get-RunCgroup).Path
        # An open-files limit above the kernel's nr_open makes the launcher's setrlimit fail after the cgroup exists.
        $req = New-Req '/bin/sh' @('-c', "touch '$Marker'") -Policy @{ max_processes = 5; max_open_files = 1099511627776 }
        { Invoke-RequiemExec -Request $req -ErrorAction Stop } | Should -Throw -ErrorId 'SandboxSetupFailed,Requiem.PowerShell.InvokeRequiemExecCommand'
        Test-Path $Marker | Should -BeFalse
        Start-Sleep -Milliseconds 500
        @(Get-RunCgroup | Where-Object { $_.Empty -and $_.Path -notin $runsBefore }) | Should -BeNullOrEmpty
    }

    It 'refuses a lone surrogate as InvalidJson (<Case>)' -ForEach @(
        @{ Case = 'escaped in JSON text'; Kind = 'json' }
        @{ Case = 'in a hashtable string'; Kind = 'hashtable' }
        @{ Case = 'in a -FilePath argument'; Kind = 'parameters' }
        @{ Case = 'as an env name'; Kind = 'name' }
    ) {
        $lone = [string][char]0xD800
        $call = switch ($Kind) {
            'json' { { Invoke-RequiemExec -Request ('{"command":"/bin/sh","argv":["-c","touch ' + $Marker + '","\ud800"],"workspace_root":"' + $Ws + '"}') -ErrorAction Stop } }
            'hashtable' { { Invoke-RequiemExec -Request (New-Req '/bin/sh' @('-c', "touch '$Marker'", $lone)) -ErrorAction Stop } }
            'parameters' { { Invoke-RequiemExec -FilePath /bin/sh -ArgumentList '-c', "touch '$Marker'", $lone -WorkingDirectory $Ws -ErrorAction Stop } }
            'name' { { Invoke-RequiemExec -Request ('{"command":"/bin/sh","argv":["-c","touch ' + $Marker + '"],"env":{"\udc00":"x"},"workspace_root":"' + $Ws + '"}') -ErrorAction Stop } }
        }
        $call | Should -Throw -ErrorId 'InvalidJson,Requiem.PowerShell.InvokeRequiemExecCommand'
        Test-Path $Marker | Should -BeFalse
    }

    It 'refuses a request file with invalid UTF-8 instead of running it with U+FFFD' {
        $file = Join-Path $Dir 'bad-utf8.json'
        $head = [Text.Encoding]::UTF8.GetBytes('{"command":"/bin/sh","argv":["-c","touch ' + $Marker + '","')
        $tail = [Text.Encoding]::UTF8.GetBytes('"],"workspace_root":"' + $Ws + '"}')
        [IO.File]::WriteAllBytes($file, [byte[]]($head + @(0xC3, 0x28, 0xFF) + $tail))
        { Invoke-RequiemExec -Request $file -ErrorAction Stop } | Should -Throw -ErrorId 'InvalidJson,Requiem.PowerShell.InvokeRequiemExecCommand'
        Test-Path $Marker | Should -BeFalse
        # The same file in valid UTF-8 (with a BOM, as some editors write it) runs.
        [IO.File]::WriteAllBytes($file, [byte[]](@(0xEF, 0xBB, 0xBF) + $head + [Text.Encoding]::UTF8.GetBytes('é') + $tail))
        (Invoke-RequiemExec -Request $file).ExitCode | Should -Be 0
        Test-Path $Marker | Should -BeTrue
    }

    It 'resolves a long cwd in linear time and refuses one longer than PATH_MAX with PathTooLong' {
        $deep = ('a/' * 2040)   # 4,080 bytes: under PATH_MAX, does not exist
        $sw = [Diagnostics.Stopwatch]::StartNew()
        { Invoke-RequiemExec -Request (New-Req '/bin/sh' @('-c', "touch '$Marker'") -Extra @{ cwd = $deep }) -ErrorAction Stop } |
            Should -Throw -ErrorId 'WorkingDirectoryNotFound,Requiem.PowerShell.InvokeRequiemExecCommand'
        $sw.Elapsed.TotalSeconds | Should -BeLessThan 2
        foreach ($field in 'cwd', 'outputs', 'inputs') {
            $long = 'a/' * 524288   # 1 MiB
            $extra = if ($field -eq 'cwd') { @{ cwd = $long } } else { @{ $field = [string[]]@($long) } }
            $sw.Restart()
            { Invoke-RequiemExec -Request (New-Req '/bin/sh' @('-c', "touch '$Marker'") -Extra $extra) -ErrorAction Stop } |
                Should -Throw -ErrorId 'PathTooLong,Requiem.PowerShell.InvokeRequiemExecCommand'
            $sw.Elapsed.TotalSeconds | Should -BeLessThan 5
        }
        Test-Path $Marker | Should -BeFalse
    }

    It 'resolves a deep existing cwd through a symlink inside the workspace' {
        $real = Join-Path $Ws ('r/' * 50)
        New-Item -ItemType Directory -Force -Path $real | Out-Null
        New-Item -ItemType SymbolicLink -Path (Join-Path $Ws 'deep-link') -Target $real | Out-Null
        $r = Invoke-RequiemExec -Request (New-Req '/bin/pwd' -Extra @{ cwd = 'deep-link/../deep-link' }) -IncludeOutput
        $r.StdoutText.Trim() | Should -Be $real.TrimEnd('/')
    }
}

Describe 'Run cgroups: each run its own process limit, nothing left behind' -Skip:(-not $IsLinux) {
    It 'enforces each run''s max_processes when one run follows another (the emptied cgroup may be reused) and leaves no cgroup behind' {
        $health = Get-RequiemHealth
        if (($health.Capabilities | Where-Object Name -eq 'process_limit').Status -ne 'enforced') {
            Set-ItResult -Skipped -Because 'no pids cgroup here (process_limit is not enforced)'
            return
        }
        $runsBefore = @(Get-RunCgroup).Path
        $fork = 'for i in 1 2 3 4 5 6; do sleep 0.2 & done; wait; echo all-forked'
        $results = foreach ($max in 64, 3, 64, 3, 64) {
            Invoke-RequiemExec -Request (New-Req '/bin/sh' @('-c', $fork) -Policy @{ max_processes = $max }) -IncludeOutput -WarningAction SilentlyContinue
        }
        foreach ($i in 0, 2, 4) { $results[$i].StdoutText | Should -Match 'all-forked'; $results[$i].ExitCode | Should -Be 0 }
        foreach ($i in 1, 3) { $results[$i].StdoutText | Should -Not -Match 'all-forked'; $results[$i].StderrText | Should -Match 'fork' }
        Start-Sleep -Milliseconds 500
        @(Get-RunCgroup | Where-Object { $_.Empty -and $_.Path -notin $runsBefore }) | Should -BeNullOrEmpty
    }

    It 'removes an empty run cgroup that a killed process left behind, and only that' {
        if (-not $IsRoot) { Set-ItResult -Skipped -Because 'the run cgroups are made as root'; return }
        $health = Get-RequiemHealth
        if (($health.Capabilities | Where-Object Name -eq 'process_limit').Status -ne 'enforced') {
            Set-ItResult -Skipped -Because 'no pids cgroup here (process_limit is not enforced)'
            return
        }
        # The folder the run cgroups are made in (each pwsh makes its own run-<pid>-... there).
        $base = @(Get-ChildItem /sys/fs/cgroup -Directory -Recurse -Depth 3 -Filter 'requiem' -ErrorAction Ignore)[0].FullName
        $gone = Start-Process /bin/true -PassThru; $gone.WaitForExit()
        $orphan = Join-Path $base "run-$($gone.Id)-$([guid]::NewGuid().ToString('n'))"
        $mine = Join-Path $base "run-$PID-$([guid]::NewGuid().ToString('n'))"
        New-Item -ItemType Directory -Path $orphan, $mine | Out-Null
        try {
            $script = "Import-Module '$ModulePath'; `$env:REQUIEM_CAS = '$($env:REQUIEM_CAS)'; (Invoke-RequiemExec -Request @{ command = '/bin/true'; argv = @(); workspace_root = '$Ws'; policy = @{ max_processes = 5 } } -WarningAction SilentlyContinue).ExitCode"
            Invoke-FreshPwsh -Script $script | Select-Object -Last 1 | Should -Be '0'
            Test-Path -LiteralPath $orphan | Should -BeFalse   # its owner is gone and it is empty
            Test-Path -LiteralPath $mine | Should -BeTrue      # its owner (this process) is alive
        }
        finally {
            foreach ($d in $orphan, $mine) { if (Test-Path -LiteralPath $d) { [IO.Directory]::Delete($d) } }
        }
    }
}
