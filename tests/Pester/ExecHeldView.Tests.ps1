BeforeAll {
    . (Join-Path $PSScriptRoot 'TestSetup.ps1')
    # Outside /tmp: a run's /tmp is its own tmpfs, and a read-only path below it is never held.
    $script:Dir = "/opt/requiem-heldview-test-" + [guid]::NewGuid().ToString('n')
    $script:IsRoot = $IsLinux -and ((& id -u) -eq '0')
    $script:SavedCas = $env:REQUIEM_CAS
    $script:SavedLauncher = $env:REQUIEM_LAUNCHER
    Remove-Item Env:REQUIEM_LAUNCHER -ErrorAction Ignore
    $script:Health = if ($IsLinux) { Get-RequiemHealth } else { $null }
    $script:Held = $IsRoot -and $Health.Isolator -eq 'requiem-launch' -and (@($Health.ProbeNotes) -match 'copy a file-system view held per layout')
    if ($IsRoot) {
        New-Item -ItemType Directory -Force -Path (Join-Path $Dir 'ws'), (Join-Path $Dir 'ro') | Out-Null
        $env:REQUIEM_CAS = Join-Path $Dir 'cas'
    }
    $script:Ws = Join-Path $Dir 'ws'
    $script:Ro = Join-Path $Dir 'ro'
    # How many views this process has built: the only way to tell from outside that a run copied a held view rather
    # than building its own (both show the command the same files, which is the point).
    $script:HeldViewType = [AppDomain]::CurrentDomain.GetAssemblies() | Where-Object { $_.GetName().Name -eq 'Requiem.Engine' } |
        ForEach-Object { $_.GetType('Requiem.Engine.Sandbox.HeldView') } | Select-Object -First 1
    function script:Get-ViewsBuilt { $HeldViewType.GetProperty('Built').GetValue($null) }

    function script:Invoke-Hermetic([string] $Script, [string[]] $ReadOnly = @(), [string[]] $Inputs = @(), [string] $Workspace = $Ws) {
        $req = @{
            command = '/bin/sh'; argv = @('-c', $Script); workspace_root = $Workspace; inputs = $Inputs; timeout_ms = 10000; max_output_bytes = 65536
            policy = @{ filesystem = 'hermetic'; seccomp = $true; deny_network = $true; max_processes = 64
                readonly_paths = @('/bin', '/lib', '/lib64', '/usr', '/etc/passwd') + $ReadOnly }
        }
        Invoke-RequiemExec -Request $req -IncludeOutput -WarningAction SilentlyContinue
    }
}
AfterAll {
    $env:REQUIEM_CAS = $SavedCas
    if ($null -ne $SavedLauncher) { $env:REQUIEM_LAUNCHER = $SavedLauncher }
    if ($IsRoot) {
        if ((Get-Content /proc/self/mountinfo) -match [regex]::Escape($Dir)) { & umount -R (Join-Path $Ro 'mnt') 2>$null }
        Remove-Item -Recurse -Force $Dir -ErrorAction Ignore
    }
}

Describe 'Held hermetic views (requiem-launch, root): built once per layout, copied per run, never stale' -Skip:(-not $IsLinux) {
    BeforeEach {
        if (-not $Held) { Set-ItResult -Skipped -Because 'held views need root and requiem-launch (health says which is in use)' }
    }

    It 'health says hermetic runs copy a held view; a layout''s second run builds it and later runs reuse it' {
        @($Health.ProbeNotes) -match 'copy a file-system view held per layout' | Should -Not -BeNullOrEmpty
        $Health.SandboxCapabilities.Enforced | Should -Contain 'filesystem_isolation'
        $script_ = 'echo run-$$ > /dev/null; ls /; echo done'
        $before = Get-ViewsBuilt
        $first = Invoke-Hermetic $script_
        (Get-ViewsBuilt) | Should -Be $before -Because 'a layout seen for the first time builds its own view'
        $second = Invoke-Hermetic $script_
        (Get-ViewsBuilt) | Should -Be ($before + 1)
        $third = Invoke-Hermetic $script_
        (Get-ViewsBuilt) | Should -Be ($before + 1) -Because 'the third run reuses the held view'
        foreach ($r in $first, $second, $third) { $r.ExitCode | Should -Be 0; $r.Sandbox.Enforced | Should -Contain 'filesystem_isolation' }
        # The command sees the same root whichever way its view was made.
        $second.StdoutText | Should -Be $first.StdoutText
        $third.StdoutText | Should -Be $first.StdoutText
        # No holder process of ours is left: the engine keeps the namespace by its descriptor.
        Get-ChildItem /proc -Directory | Where-Object Name -match '^\d+$' | ForEach-Object {
            try {
                $stat = [IO.File]::ReadAllText("/proc/$($_.Name)/stat")
                $ppid = $stat.Substring($stat.LastIndexOf(')') + 2).Split(' ')[1]
                if ($ppid -eq "$PID") { [IO.File]::ReadAllText("/proc/$($_.Name)/cmdline") }
            }
            catch { }
        } | Where-Object { $_ -match '--hold-view' } | Should -BeNullOrEmpty
    }

    It 'a file in a readonly path replaced by rename between runs: the next run sees the new content' {
        $f = Join-Path $Ro 'tool.conf'
        Set-Content -LiteralPath $f -Value 'v1' -NoNewline
        1..3 | ForEach-Object { (Invoke-Hermetic "cat $f" -ReadOnly $f).StdoutText } | Should -Be @('v1', 'v1', 'v1')
        $built = Get-ViewsBuilt
        Set-Content -LiteralPath "$f.new" -Value 'v2' -NoNewline
        Move-Item -LiteralPath "$f.new" -Destination $f -Force
        $r = Invoke-Hermetic "cat $f" -ReadOnly $f
        $r.StdoutText | Should -Be 'v2'
        (Get-ViewsBuilt) | Should -Be ($built + 1) -Because 'the view held the old file, so it was rebuilt'
        (Invoke-Hermetic "cat $f; (echo x >> $f) 2>&1" -ReadOnly $f).StdoutText | Should -Match 'v2.*Read-only file system'
    }

    It 'a readonly path that appears between runs is seen by the next run, one that vanishes is gone' {
        $p = Join-Path $Ro 'later'
        $probe = "if [ -e $p ]; then echo seen; else echo absent; fi"
        1..3 | ForEach-Object { (Invoke-Hermetic $probe -ReadOnly $p).StdoutText } | Should -Be @("absent`n", "absent`n", "absent`n")
        New-Item -ItemType Directory -Path $p | Out-Null
        (Invoke-Hermetic $probe -ReadOnly $p).StdoutText | Should -Be "seen`n"
        (Invoke-Hermetic $probe -ReadOnly $p).StdoutText | Should -Be "seen`n"
        Remove-Item -LiteralPath $p
        (Invoke-Hermetic $probe -ReadOnly $p).StdoutText | Should -Be "absent`n"
    }

    It 'a mount made on the host below a readonly path between runs is seen by the next run' {
        $m = Join-Path $Ro 'mnt'
        New-Item -ItemType Directory -Force -Path $m | Out-Null
        $probe = "ls $m"
        1..3 | ForEach-Object { (Invoke-Hermetic $probe -ReadOnly $m).StdoutText } | Should -Be @('', '', '')
        & mount -t tmpfs requiem-heldview-test $m
        try {
            Set-Content -LiteralPath (Join-Path $m 'on-the-mount') -Value 'x'
            (Invoke-Hermetic $probe -ReadOnly $m).StdoutText | Should -Be "on-the-mount`n"
        }
        finally { & umount $m }
    }

    It 'a declared input replaced by rename between runs is the new one, read-only; the workspace stays writable' {
        Set-Content -LiteralPath (Join-Path $Ws 'in.txt') -Value 'input v1' -NoNewline
        $s = 'cat in.txt; echo; (echo x >> in.txt) 2>&1; echo ok > out.txt && echo wrote-workspace'
        1..3 | ForEach-Object { (Invoke-Hermetic $s -Inputs 'in.txt').StdoutText } | ForEach-Object { $_ | Should -Match '^input v1\n.*Read-only file system.*\nwrote-workspace' }
        Set-Content -LiteralPath (Join-Path $Ws 'in.new') -Value 'input v2' -NoNewline
        Move-Item -LiteralPath (Join-Path $Ws 'in.new') -Destination (Join-Path $Ws 'in.txt') -Force
        (Invoke-Hermetic $s -Inputs 'in.txt').StdoutText | Should -Match '^input v2\n.*Read-only file system.*\nwrote-workspace'
        Get-Content -LiteralPath (Join-Path $Ws 'in.txt') | Should -Be 'input v2'
    }

    It 'runs sharing a view see neither each other''s /tmp nor anything written to the view; another workspace is not visible' {
        $write = 'echo secret > /tmp/left-behind; for f in /x /dev/x /usr/x /etc/x /proc/x; do (echo x > "$f") 2>/dev/null && echo "wrote $f"; done; (mount -t tmpfs x /tmp) 2>/dev/null && echo mounted; echo done'
        $look = 'ls -A /tmp | grep -v "^opt$"; ls -A /dev | tr "\n" " "; echo; echo done'
        1..3 | ForEach-Object { (Invoke-Hermetic $write).StdoutText } | Should -Be @("done`n", "done`n", "done`n")
        $seen = Invoke-Hermetic $look
        $seen.StdoutText | Should -Not -Match 'left-behind'
        $seen.StdoutText | Should -Not -Match '\bx\b'
        Test-Path /x, /usr/x | Should -Be @($false, $false)
        $other = Join-Path $Dir 'ws2'
        New-Item -ItemType Directory -Force -Path $other | Out-Null
        Set-Content -LiteralPath (Join-Path $other 'mine.txt') -Value 'ws2'
        1..2 | ForEach-Object { (Invoke-Hermetic "ls -A $Ws 2>&1; ls -A $other" -Workspace $other).StdoutText } | ForEach-Object {
            $_ | Should -Match 'No such file'
            $_ | Should -Match 'mine.txt'
        }
    }

    It 'workspace mode: the view is held too; writes outside fail, a hidden path stays hidden even after it is replaced, host files are live' {
        $hid = Join-Path $Dir 'hidden'
        New-Item -ItemType Directory -Force -Path $hid | Out-Null
        Set-Content -LiteralPath (Join-Path $hid 'secret1') -Value 's1'
        function Invoke-WorkspaceRun([string] $Script) {
            $req = @{
                command = '/bin/sh'; argv = @('-c', $Script); workspace_root = $Ws; timeout_ms = 10000; max_output_bytes = 65536
                policy = @{ filesystem = 'workspace'; seccomp = $true; deny_network = $true; hidden_paths = @($hid) }
            }
            Invoke-RequiemExec -Request $req -IncludeOutput -WarningAction SilentlyContinue
        }
        $probe = "ls -A $hid; (echo x > $Dir/outside) 2>/dev/null && echo wrote-outside; echo in > $Ws/inside.txt && echo wrote-inside; cat $Dir/live.txt 2>/dev/null; echo done"
        $before = Get-ViewsBuilt
        $runs = 1..3 | ForEach-Object { Invoke-WorkspaceRun $probe }
        (Get-ViewsBuilt) | Should -Be ($before + 1) -Because 'the second run of the layout builds its held view and the third reuses it'
        foreach ($r in $runs) {
            $r.ExitCode | Should -Be 0
            $r.StdoutText | Should -Be "wrote-inside`ndone`n"
            $r.Sandbox.Enforced | Should -Contain 'workspace_confinement'
        }
        Test-Path (Join-Path $Dir 'outside') | Should -BeFalse
        # A file written on the host after the view was built is seen (the host's tree is bound, not copied).
        Set-Content -LiteralPath (Join-Path $Dir 'live.txt') -Value 'live' -NoNewline
        (Invoke-WorkspaceRun $probe).StdoutText | Should -Be "wrote-inside`nlivedone`n"
        # The hidden directory replaced by another one at the same path: the new one is hidden too (the view is rebuilt).
        $built = Get-ViewsBuilt
        Move-Item -LiteralPath $hid -Destination "$hid.old"
        New-Item -ItemType Directory -Path $hid | Out-Null
        Set-Content -LiteralPath (Join-Path $hid 'secret2') -Value 's2'
        $r = Invoke-WorkspaceRun $probe
        $r.StdoutText | Should -Be "wrote-inside`nlivedone`n"
        (Get-ViewsBuilt) | Should -BeGreaterThan $built
    }
}

Describe 'Held hermetic views: an ordinary user builds the view per run' -Skip:(-not $IsLinux) {
    It 'health says so, and hermetic runs work and are confined' {
        if (-not $IsRoot -or -not (Get-Command setpriv -ErrorAction Ignore) -or $Health.Isolator -ne 'requiem-launch') {
            Set-ItResult -Skipped -Because 'needs root to switch to an ordinary user with setpriv, and requiem-launch'; return
        }
        & setpriv --reuid=65534 --regid=65534 --clear-groups test -x $Pwsh 2>$null
        if ($LASTEXITCODE -ne 0) { Set-ItResult -Skipped -Because "an ordinary user cannot run $Pwsh here"; return }
        $home_ = Join-Path $Dir 'nobody'
        New-Item -ItemType Directory -Force -Path $home_ | Out-Null
        & chown 65534:65534 $home_
        & chmod 755 $Dir
        $script = @"
`$ErrorActionPreference = 'Stop'
Import-Module '$ModulePath'
`$env:REQUIEM_CAS = '$home_/cas'
`$h = Get-RequiemHealth
'notes: ' + ((@(`$h.ProbeNotes) -match 'file-system view') -join ' | ')
'enforced: ' + (`$h.SandboxCapabilities.Enforced -join ',')
`$req = @{ command = '/bin/sh'; argv = @('-c', 'echo ok > out.txt; (echo x > /x) 2>/dev/null || echo root-ro; [ -e /etc/hostname ] || echo no-hostname'); workspace_root = '$home_'
    policy = @{ filesystem = 'hermetic'; seccomp = `$true; deny_network = `$true } }
foreach (`$i in 1..3) { `$r = Invoke-RequiemExec -Request `$req -IncludeOutput; 'run: ' + `$r.ExitCode + ' ' + (`$r.StdoutText -replace "``n", ' ') }
"@
        $out = & setpriv --reuid=65534 --regid=65534 --clear-groups --reset-env env "HOME=$home_" "XDG_DATA_HOME=$home_/data" $Pwsh -NoProfile -NonInteractive -Command $script 2>&1
        $text = $out -join "`n"
        $text | Should -Match 'notes: .*build their file-system view per run \(held views are for root callers\)'
        $text | Should -Match 'enforced: .*filesystem_isolation'
        ($out | Where-Object { $_ -match '^run: ' }) | Should -Be @('run: 0 root-ro no-hostname ', 'run: 0 root-ro no-hostname ', 'run: 0 root-ro no-hostname ')
        Get-Content (Join-Path $home_ 'out.txt') | Should -Be 'ok'
    }
}
