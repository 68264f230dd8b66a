# Errors a user meets in daily use, each tried as a user would, asserting the FullyQualifiedErrorId and the message.
BeforeAll {
    . (Join-Path $PSScriptRoot 'TestSetup.ps1')
    $script:Dir = New-TestDirectory
    $script:Cas = Join-Path $Dir 'cas'
    Add-RequiemCasObject -Cas $Cas -InputObject 'present' | Out-Null
    $script:Absent = 'ab' * 32

    function script:Get-Failure([scriptblock] $Action) {
        # The first error record the action produces (terminating or not).
        $ErrorActionPreference = 'Stop'
        try { & $Action | Out-Null } catch { return $_ }
        throw 'expected an error, got none'
    }
}
AfterAll { Remove-Item -Recurse -Force $script:Dir -ErrorAction Ignore }

Describe 'A directory given as a proof path' {
    It '<Command> says it is a directory' -ForEach @(
        @{ Command = 'Test-RequiemProof'; Call = { Test-RequiemProof -LiteralPath $Dir -Cas $Cas }; Message = "'{0}' is a directory, not a proof file; to verify the proofs in it, use -Path '{0}/*.json'." }
        @{ Command = 'Test-RequiemProof'; Call = { Test-RequiemProof -Path $Dir -Cas $Cas }; Message = "'{0}' is a directory, not a proof file; to verify the proofs in it, use -Path '{0}/*.json'." }
        @{ Command = 'Export-RequiemProof'; Call = { Export-RequiemProof -LiteralPath $Dir -Destination (Join-Path $Dir 'x.tar') -Cas $Cas }; Message = "'{0}' is a directory, not a proof file." }
        @{ Command = 'Import-RequiemProof'; Call = { Import-RequiemProof -LiteralPath $Dir -Cas $Cas }; Message = "'{0}' is a directory, not a proof archive." }
    ) {
        $err = Get-Failure $Call
        $err.FullyQualifiedErrorId | Should -Be "PathIsDirectory,Requiem.PowerShell.$($Command -replace '-')Command"
        $err.Exception.Message | Should -Be ($Message -f $Dir)
        $err.TargetObject | Should -Be $Dir
    }
}

Describe 'Not in the store' {
    It 'an object that is not in the store names the store' {
        $err = Get-Failure { Get-RequiemCasObject -Hash $Absent -Cas $Cas }
        $err.FullyQualifiedErrorId | Should -Be 'CasObjectNotFound,Requiem.PowerShell.GetRequiemCasObjectCommand'
        $err.Exception.Message | Should -Be "CAS object $Absent is not in the store at '$Cas'."
        $err = Get-Failure { Export-RequiemCasObject -Hash $Absent -Destination (Join-Path $Dir 'out.bin') -Cas $Cas }
        $err.Exception.Message | Should -Be "CAS object $Absent is not in the store at '$Cas'."
    }

    It 'a ref that does not exist names the store' {
        $err = Get-Failure { Get-RequiemCasRef -Name 'no/such' -Cas $Cas }
        $err.FullyQualifiedErrorId | Should -Be 'RefNotFound,Requiem.PowerShell.GetRequiemCasRefCommand'
        $err.Exception.Message | Should -Be "There is no ref named 'no/such' in the store at '$Cas'."
        $err = Get-Failure { Remove-RequiemCasRef -Name 'no/such' -Cas $Cas }
        $err.Exception.Message | Should -Be "There is no ref named 'no/such' in the store at '$Cas'."
    }
}

Describe 'An argument list too large for the OS' -Skip:(-not $IsLinux) {
    BeforeAll {
        $script:Ws = Join-Path $Dir 'ws'
        New-Item -ItemType Directory -Path $Ws | Out-Null
    }

    It 'refuses one argument over MAX_ARG_STRLEN before launch' {
        $request = @{ command = '/bin/sh'; argv = @('-c', 'touch ran', 'x', ('a' * 200000)); workspace_root = $Ws }
        $err = Get-Failure { Invoke-RequiemExec -Request $request -Cas $Cas }
        $err.FullyQualifiedErrorId | Should -Be 'ArgumentListTooLong,Requiem.PowerShell.InvokeRequiemExecCommand'
        $err.Exception.Message | Should -Be '$.argv[3] is 200001 bytes; Linux passes at most 131072 bytes (MAX_ARG_STRLEN) in one argument or environment string, so the command was not started. Pass large data through stdin or an input file.'
        Test-Path (Join-Path $Ws 'ran') | Should -BeFalse
    }

    It 'refuses arguments over ARG_MAX (sysconf, which follows the stack limit), naming the limit, and runs nothing' {
        # 512 KiB of stack makes ARG_MAX 128 KiB; 8 arguments of 20 000 bytes fit the request's own limits but not the OS's.
        $script = @"
Import-Module '$ModulePath'
`$request = @{ command = '/bin/sh'; argv = @('-c', 'touch ran', 'x') + @(1..8 | ForEach-Object { 'b' * 20000 }); workspace_root = '$Ws' }
try { Invoke-RequiemExec -Request `$request -Cas '$Cas' -ErrorAction Stop; 'NO-ERROR' } catch { `$_.FullyQualifiedErrorId; `$_.Exception.Message }
"@
        $out = & prlimit --stack=524288:524288 $Pwsh -NoProfile -NonInteractive -Command $script 2>&1
        $out[0] | Should -Be 'ArgumentListTooLong,Requiem.PowerShell.InvokeRequiemExecCommand'
        $out[1] | Should -Match '^The command''s arguments and environment take \d+ bytes \(12 argument\(s\), \d+ environment variable\(s\)\); this system passes at most 131072 bytes to a new process \(ARG_MAX, sysconf\(_SC_ARG_MAX\)\), so the command was not started\.'
        Test-Path (Join-Path $Ws 'ran') | Should -BeFalse
    }

    It 'still runs a request within the limits' {
        $r = Invoke-RequiemExec -Request @{ command = '/bin/sh'; argv = @('-c', 'echo ok', 'x', ('c' * 100000)); workspace_root = $Ws } -Cas $Cas
        $r.ExitCode | Should -Be 0
    }
}

Describe 'A byte array piped to Get-RequiemDigest and Add-RequiemCasObject' {
    BeforeAll {
        $script:File = Join-Path $Dir 'bytes.bin'
        New-PatternFile -Path $File -Length 3000
    }

    It 'Get-RequiemDigest hashes the piped bytes as one input, like the file' {
        $digests = @([IO.File]::ReadAllBytes($File) | Get-RequiemDigest -ErrorAction Stop)
        $digests.Count | Should -Be 1
        $digests[0].Hash | Should -Be (Get-RequiemDigest -LiteralPath $File).Hash
        $digests[0].Length | Should -Be 3000
        ([IO.File]::ReadAllBytes($File) | Get-RequiemDigest -Domain Cas).Hash | Should -Be (Get-RequiemDigest -LiteralPath $File -Domain Cas).Hash
    }

    It 'says so in -Verbose' {
        $verbose = [IO.File]::ReadAllBytes($File) | Get-RequiemDigest -Verbose 4>&1 | Where-Object { $_ -is [System.Management.Automation.VerboseRecord] }
        "$verbose" | Should -Match 'Collected 3000 byte\(s\) that arrived one at a time through the pipeline'
    }

    It 'Add-RequiemCasObject stores the piped bytes as one object' {
        $stored = @([IO.File]::ReadAllBytes($File) | Add-RequiemCasObject -Cas $Cas -ErrorAction Stop)
        $stored.Count | Should -Be 1
        $stored[0].Size | Should -Be 3000
        $stored[0].Hash | Should -Be (Get-RequiemDigest -LiteralPath $File -Domain Cas).Hash
    }

    It 'keeps a string after bytes as its own input' {
        $out = @(& { [byte]1; [byte]2; 'text' } | Get-RequiemDigest)
        $out.Count | Should -Be 2
        $out[0].Hash | Should -Be (Get-RequiemDigest -InputObject ([byte[]](1, 2))).Hash
        $out[1].Hash | Should -Be (Get-RequiemDigest -InputObject 'text').Hash
    }
}

Describe 'A wildcard in -Path that matches nothing' {
    It '<Command> -Path gives FileNotFound, as for a missing file' -ForEach @(
        @{ Command = 'Get-RequiemDigest'; Call = { param($p) Get-RequiemDigest -Path $p } }
        @{ Command = 'Test-RequiemDigest'; Call = { param($p) Test-RequiemDigest -Path $p -Expected ('00' * 32) } }
        @{ Command = 'Add-RequiemCasObject'; Call = { param($p) Add-RequiemCasObject -Path $p -Cas $Cas } }
        @{ Command = 'Test-RequiemProof'; Call = { param($p) Test-RequiemProof -Path $p -Cas $Cas } }
        @{ Command = 'Export-RequiemProof'; Call = { param($p) Export-RequiemProof -Path $p -Destination (Join-Path $Dir 'e.tar') -Cas $Cas } }
        @{ Command = 'Import-RequiemProof'; Call = { param($p) Import-RequiemProof -Path $p -Cas $Cas } }
        @{ Command = 'Test-RequiemConfig'; Call = { param($p) Test-RequiemConfig -Path $p } }
    ) {
        $pattern = Join-Path $Dir 'nothing-here-*.json'
        $err = $null
        try { & $Call $pattern -ErrorAction Stop | Out-Null } catch { $err = $_ }
        $err | Should -Not -BeNullOrEmpty
        $err.FullyQualifiedErrorId | Should -Be "FileNotFound,Requiem.PowerShell.$($Command -replace '-')Command"
        $err.Exception.Message | Should -Be "Cannot find path '$pattern' because no file matches the wildcard pattern."
        $err.TargetObject | Should -Be $pattern
        # The same wording family as a missing literal file.
        $missingPath = Join-Path $Dir 'missing.json'
        $missing = Get-Failure { & $Call $missingPath }.GetNewClosure()
        $missing.FullyQualifiedErrorId | Should -Be $err.FullyQualifiedErrorId
    }
}
