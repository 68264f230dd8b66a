# The action cache as a user meets it: Invoke-RequiemExec -Cache, Get-RequiemCacheEntry, the config keys, GC.
# Evidence that nothing ran is never a timing: every command appends a line to runs.log in its workspace (not a
# declared input or output, so not part of the key), and a hit leaves that file as it was.
BeforeDiscovery {
    . (Join-Path $PSScriptRoot 'TestSetup.ps1')
    $health = Get-RequiemHealth -WarningAction SilentlyContinue
    $script:NoHermetic = -not $IsLinux -or $health.SandboxCapabilities.Enforced -notcontains 'filesystem_isolation' -or
        $health.SandboxCapabilities.Enforced -notcontains 'network_isolation'
}

BeforeAll {
    . (Join-Path $PSScriptRoot 'TestSetup.ps1')
    $script:Dir = New-TestDirectory
    $script:SavedCas = $env:REQUIEM_CAS
    $script:SavedConfig = $env:REQUIEM_CONFIG
    Remove-Item Env:REQUIEM_CONFIG -ErrorAction Ignore

    function script:New-Workspace([string] $Name) {
        $ws = Join-Path $Dir $Name
        New-Item -ItemType Directory -Path $ws | Out-Null
        Set-Content -LiteralPath (Join-Path $ws 'a.txt') -Value 'alpha' -NoNewline
        Set-Content -LiteralPath (Join-Path $ws 'b.txt') -Value 'bravo' -NoNewline
        $ws
    }

    # A hermetic request that reads two declared inputs, writes a declared output, and logs that it ran.
    function script:New-CacheRequest([string] $Workspace, [string] $Script = 'cat a.txt b.txt | tr a-z A-Z > out.txt',
                                      [hashtable] $Policy = @{ filesystem = 'hermetic'; deny_network = $true }) {
        @{
            command = '/bin/sh'; argv = @('-c', "echo ran >> runs.log; $Script; echo stdout-line; echo stderr-line >&2")
            workspace_root = $Workspace; inputs = @('a.txt', 'b.txt'); outputs = @('out.txt'); policy = $Policy; timeout_ms = 20000
        }
    }

    function script:Get-RunCount([string] $Workspace) {
        $log = Join-Path $Workspace 'runs.log'
        if (Test-Path -LiteralPath $log) { @(Get-Content -LiteralPath $log).Count } else { 0 }
    }
}

AfterAll {
    $env:REQUIEM_CAS = $SavedCas
    $env:REQUIEM_CONFIG = $SavedConfig
    Remove-Item -Recurse -Force $script:Dir -ErrorAction Ignore
}

Describe 'Invoke-RequiemExec -Cache: a hit runs nothing and restores the outputs' -Skip:$NoHermetic {
    BeforeAll {
        $script:Ws = New-Workspace 'slow'
        $script:Cas = Join-Path $Dir 'cas-agent-a'
        # Takes about 2 s when it runs.
        $script:SlowRequest = New-CacheRequest $Ws -Script 'sleep 2; cat a.txt b.txt | tr a-z A-Z > out.txt'
        $script:First = Invoke-RequiemExec -Request $SlowRequest -Cas $Cas -Cache ReadWrite -WarningAction SilentlyContinue
        $script:OutBytes = [IO.File]::ReadAllBytes((Join-Path $Ws 'out.txt'))
    }

    It 'records a hermetic, network-denied, exit-0 run and says so' {
        $First.ExitCode | Should -Be 0
        $First.DeterminismConfidence.Level | Should -Be 'high'
        $First.CacheHit | Should -BeFalse
        $First.CacheKey | Should -Match '^[0-9a-f]{64}$'
        Get-RunCount $Ws | Should -Be 1
        $entry = Get-RequiemCacheEntry -Key $First.CacheKey -Cas $Cas
        $entry.Path | Should -Be (Join-Path $Cas "ac/$($First.CacheKey.Substring(0, 2))/$($First.CacheKey).json")
        $entry.OutputFiles.Path | Should -Be 'out.txt'
        $entry.ResultDigest | Should -Be $First.ResultDigest
        @($entry.Inputs.Path) | Should -Be @('a.txt', 'b.txt')
    }

    It 'answers the same request from the cache: nothing runs, the deleted output comes back byte-identical' {
        Remove-Item -LiteralPath (Join-Path $Ws 'out.txt')
        $watch = [Diagnostics.Stopwatch]::StartNew()
        $hit = Invoke-RequiemExec -Request $SlowRequest -Cas $Cas -Cache ReadWrite -IncludeOutput
        $watch.Stop()
        $hit.CacheHit | Should -BeTrue
        $hit.CacheKey | Should -Be $First.CacheKey
        Get-RunCount $Ws | Should -Be 1 -Because 'the command did not run again'
        [IO.File]::ReadAllBytes((Join-Path $Ws 'out.txt')) | Should -Be $OutBytes
        [IO.File]::ReadAllText((Join-Path $Ws 'out.txt')) | Should -Be 'ALPHABRAVO'
        $hit.StdoutText | Should -Be "stdout-line`n"
        $hit.StderrText | Should -Be "stderr-line`n"
        $hit.ResultDigest | Should -Be $First.ResultDigest
        $hit.StartedAt | Should -Be $First.StartedAt -Because 'the recorded result is returned'
        $watch.Elapsed.TotalSeconds | Should -BeLessThan 1.5 -Because 'a hit does not wait for the 2 s command'
    }

    It 'gives a hit to a second agent with a copy of the store (agent B)' {
        $casB = Join-Path $Dir 'cas-agent-b'
        Copy-Item -Recurse -LiteralPath $Cas -Destination $casB
        Remove-Item -LiteralPath (Join-Path $Ws 'out.txt')
        $hit = Invoke-RequiemExec -Request $SlowRequest -Cas $casB -Cache Read
        $hit.CacheHit | Should -BeTrue
        Get-RunCount $Ws | Should -Be 1
        [IO.File]::ReadAllBytes((Join-Path $Ws 'out.txt')) | Should -Be $OutBytes
    }

    It 'writes cache_hit and cache_key into -OutFile, outside result_digest' {
        $file = Join-Path $Dir 'hit.json'
        $null = Invoke-RequiemExec -Request $SlowRequest -Cas $Cas -Cache Read -OutFile $file
        $doc = Get-Content -LiteralPath $file -Raw | ConvertFrom-Json
        $doc.cache_hit | Should -BeTrue
        $doc.cache_key | Should -Be $First.CacheKey
        (Test-RequiemDigest -Result $file).Valid | Should -BeTrue
        Get-RunCount $Ws | Should -Be 1
    }

    It 'names the key components with -Verbose' {
        $verbose = Invoke-RequiemExec -Request $SlowRequest -Cas $Cas -Cache Read -Verbose 4>&1 |
            Where-Object { $_ -is [System.Management.Automation.VerboseRecord] } | ForEach-Object Message
        $line = $verbose | Where-Object { $_ -like "action cache: key $($First.CacheKey) over*" }
        $line | Should -Not -BeNullOrEmpty
        $line | Should -Match 'request [0-9a-f]{12}'
        $line | Should -Match 'a\.txt=[0-9a-f]{12}'
        $line | Should -Match 'b\.txt=[0-9a-f]{12}'
        $line | Should -Match 'command /bin/sh=[0-9a-f]{12}'
        $line | Should -Match 'platform linux/'
        ($verbose | Where-Object { $_ -like 'action cache: hit*nothing ran*' }) | Should -Not -BeNullOrEmpty
    }

    It 'misses after one byte of one input changed, and the explanation names that input' {
        $ws = New-Workspace 'onebyte'
        $request = New-CacheRequest $ws
        $recorded = Invoke-RequiemExec -Request $request -Cas $Cas -Cache ReadWrite
        $recorded.CacheKey | Should -Not -BeNullOrEmpty
        (Get-RequiemCacheEntry -Request $request -Cas $Cas).Hit | Should -BeTrue

        $bytes = [IO.File]::ReadAllBytes((Join-Path $ws 'b.txt'))
        $bytes[2] = $bytes[2] -bxor 1
        [IO.File]::WriteAllBytes((Join-Path $ws 'b.txt'), $bytes)

        $why = Get-RequiemCacheEntry -Request $request -Cas $Cas
        $why.Hit | Should -BeFalse
        $why.Closest.Key | Should -Be $recorded.CacheKey
        $why.Differences.Count | Should -Be 1
        $why.Differences[0].Component | Should -Be 'input'
        $why.Differences[0].Name | Should -Be 'b.txt'
        $why.Differences[0].Recorded | Should -Be ($recorded.InputDigests | Where-Object Path -eq 'b.txt').Digest
        $why.Summary | Should -BeLike "*input 'b.txt' has other content*"

        $rerun = Invoke-RequiemExec -Request $request -Cas $Cas -Cache ReadWrite
        $rerun.CacheHit | Should -BeFalse
        $rerun.CacheKey | Should -Not -Be $recorded.CacheKey
        Get-RunCount $ws | Should -Be 2
    }

    It 'names a changed request field (argv) as the difference' {
        $ws = New-Workspace 'argv'
        $null = Invoke-RequiemExec -Request (New-CacheRequest $ws) -Cas $Cas -Cache ReadWrite
        $why = Get-RequiemCacheEntry -Request (New-CacheRequest $ws -Script 'cat a.txt > out.txt') -Cas $Cas
        $why.Hit | Should -BeFalse
        @($why.Differences | Where-Object Component -eq 'request').Name | Should -Be 'argv'
        @($why.Differences | Where-Object Component -eq 'input') | Should -BeNullOrEmpty
    }
}

Describe 'Invoke-RequiemExec -Cache: concurrent writers' -Skip:$NoHermetic {
    It 'four concurrent runs of one request (Turbo) all succeed and leave one entry that then answers' {
        $cas = Join-Path $Dir 'cas-concurrent'
        $ws = New-Workspace 'concurrent'
        $request = New-CacheRequest $ws
        $results = @(1..4 | ForEach-Object { $request } | Invoke-RequiemExec -Cas $cas -Cache ReadWrite -Scheduler Turbo -ThrottleLimit 4 -ErrorVariable errs)
        $errs | Should -BeNullOrEmpty
        $results.Count | Should -Be 4
        @($results.CacheKey | Sort-Object -Unique).Count | Should -Be 1
        $entries = @(Get-RequiemCacheEntry -Cas $cas)
        $entries.Count | Should -Be 1
        @(Get-ChildItem -LiteralPath (Split-Path $entries[0].Path) -Force).Name | Should -Be "$($entries[0].Key).json" -Because 'no temp file is left behind'
        $ran = Get-RunCount $ws
        (Invoke-RequiemExec -Request $request -Cas $cas -Cache Read).CacheHit | Should -BeTrue
        Get-RunCount $ws | Should -Be $ran
        (Test-RequiemCas -Cas $cas -All).Valid | Should -BeTrue
    }
}

Describe 'Invoke-RequiemExec -Cache: what is never cached' -Skip:$NoHermetic {
    BeforeAll { $script:Cas = Join-Path $Dir 'cas-never' }

    It 'does not cache a non-hermetic run (<Case>), and says why with -Verbose' -ForEach @(
        @{ Case = 'workspace file system'; Policy = @{ filesystem = 'workspace'; deny_network = $true }; Reason = '*determinism confidence is medium, not high*' }
        @{ Case = 'network allowed'; Policy = @{ filesystem = 'hermetic'; deny_network = $false }; Reason = '*determinism confidence is medium, not high*deny_network*' }
        @{ Case = 'stochastic'; Policy = @{ filesystem = 'hermetic'; deny_network = $true; stochastic = $true }; Reason = '*determinism confidence is best_effort, not high*' }
    ) {
        $ws = New-Workspace ("never-" + [guid]::NewGuid().ToString('n'))
        $request = New-CacheRequest $ws -Policy $Policy
        $messages = Invoke-RequiemExec -Request $request -Cas $Cas -Cache ReadWrite -Verbose -WarningAction SilentlyContinue 4>&1 |
            Where-Object { $_ -is [System.Management.Automation.VerboseRecord] } | ForEach-Object Message
        $messages | Where-Object { $_ -like 'action cache: the result was not cached:*' } | Should -BeLike $Reason
        $again = Invoke-RequiemExec -Request $request -Cas $Cas -Cache ReadWrite -WarningAction SilentlyContinue
        $again.CacheHit | Should -BeFalse
        Get-RunCount $ws | Should -Be 2
        (Get-RequiemCacheEntry -Request $request -Cas $Cas -WarningAction SilentlyContinue).Hit | Should -BeFalse
    }

    It 'does not cache a failing run, and says why' {
        $ws = New-Workspace 'failing'
        $request = New-CacheRequest $ws -Script 'exit 3'
        $messages = Invoke-RequiemExec -Request $request -Cas $Cas -Cache ReadWrite -Verbose 4>&1 |
            Where-Object { $_ -is [System.Management.Automation.VerboseRecord] } | ForEach-Object Message
        $messages | Should -Contain 'action cache: the result was not cached: the command exited with code 3 (only exit code 0 is cached).'
        (Invoke-RequiemExec -Request $request -Cas $Cas -Cache ReadWrite).ExitCode | Should -Be 3
        Get-RunCount $ws | Should -Be 2
    }

    It '-Cache Read never writes an entry; Off (the default) neither reads nor reports a key' {
        $ws = New-Workspace 'readonly'
        $request = New-CacheRequest $ws
        $read = Invoke-RequiemExec -Request $request -Cas $Cas -Cache Read
        $read.CacheHit | Should -BeFalse
        $read.CacheKey | Should -Match '^[0-9a-f]{64}$'
        Get-RequiemCacheEntry -Cas $Cas | Where-Object Key -eq $read.CacheKey | Should -BeNullOrEmpty
        $null = Invoke-RequiemExec -Request $request -Cas $Cas -Cache ReadWrite
        $off = Invoke-RequiemExec -Request $request -Cas $Cas
        $off.CacheHit | Should -BeFalse
        $off.CacheKey | Should -BeNullOrEmpty
        ($off.ToJson() | ConvertFrom-Json).PSObject.Properties.Name | Should -Not -Contain 'cache_hit'
        Get-RunCount $ws | Should -Be 3
    }
}

Describe 'Invoke-RequiemExec -Cache: damaged cache contents are detected, not used' -Skip:$NoHermetic {
    BeforeAll { $script:Cas = Join-Path $Dir 'cas-tamper' }

    It 'runs the command when a cached output object was tampered with, says so, and the store verifies afterwards' {
        $ws = New-Workspace 'tampered-object'
        $request = New-CacheRequest $ws
        $recorded = Invoke-RequiemExec -Request $request -Cas $Cas -Cache ReadWrite
        $digest = $recorded.OutputFiles[0].Digest
        $object = Join-Path $Cas "objects/$($digest.Substring(0, 2))/$digest"
        [IO.File]::WriteAllText($object, 'ALPHABRAVX')   # same length, one byte different
        Remove-Item -LiteralPath (Join-Path $ws 'out.txt')

        $r = Invoke-RequiemExec -Request $request -Cas $Cas -Cache ReadWrite -WarningVariable warnings -WarningAction SilentlyContinue
        $r.CacheHit | Should -BeFalse
        Get-RunCount $ws | Should -Be 2 -Because 'the command ran instead'
        ($warnings -join "`n") | Should -BeLike "*entry for key $($recorded.CacheKey) was not used*$digest*"
        [IO.File]::ReadAllText((Join-Path $ws 'out.txt')) | Should -Be 'ALPHABRAVO'
        (Test-RequiemCas -Cas $Cas -All).Valid | Should -BeTrue -Because 'the run wrote the good bytes over the damaged object'
        $hit = Invoke-RequiemExec -Request $request -Cas $Cas -Cache ReadWrite
        $hit.CacheHit | Should -BeTrue
        Get-RunCount $ws | Should -Be 2
    }

    It 'leaves no restore temp file behind when a restore fails, and the run rewrites the output' {
        $ws = New-Workspace 'tampered-partial'
        $request = New-CacheRequest $ws
        $recorded = Invoke-RequiemExec -Request $request -Cas $Cas -Cache ReadWrite
        $digest = $recorded.OutputFiles[0].Digest
        [IO.File]::WriteAllText((Join-Path $Cas "objects/$($digest.Substring(0, 2))/$digest"), 'XXXXXXXXXX')
        Set-Content -LiteralPath (Join-Path $ws 'out.txt') -Value 'previous' -NoNewline
        # Read only: the damaged entry is not used, the command runs and rewrites out.txt itself.
        $null = Invoke-RequiemExec -Request $request -Cas $Cas -Cache Read -WarningAction SilentlyContinue
        [IO.File]::ReadAllText((Join-Path $ws 'out.txt')) | Should -Be 'ALPHABRAVO'
        @(Get-ChildItem -LiteralPath $ws -Force -Filter '*.requiem-restore.tmp') | Should -BeNullOrEmpty
    }

    It 'does not use an entry whose recorded result was edited' {
        $ws = New-Workspace 'tampered-entry'
        $request = New-CacheRequest $ws
        $recorded = Invoke-RequiemExec -Request $request -Cas $Cas -Cache ReadWrite
        $entryFile = (Get-RequiemCacheEntry -Key $recorded.CacheKey -Cas $Cas).Path
        $text = [IO.File]::ReadAllText($entryFile)
        [IO.File]::WriteAllText($entryFile, $text.Replace('"stdout_bytes": 12', '"stdout_bytes": 13'))
        $r = Invoke-RequiemExec -Request $request -Cas $Cas -Cache Read -WarningVariable warnings -WarningAction SilentlyContinue
        $r.CacheHit | Should -BeFalse
        ($warnings -join "`n") | Should -BeLike '*is not usable: its result hashes to*'
        Get-RunCount $ws | Should -Be 2
        $err = $null
        $null = Get-RequiemCacheEntry -Cas $Cas -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -Be 'InvalidCacheEntry,Requiem.PowerShell.GetRequiemCacheEntryCommand'
        $err[0].TargetObject | Should -Be $recorded.CacheKey
    }
}

Describe 'Action cache: config, expiry and garbage collection' -Skip:$NoHermetic {
    It 'cache.mode in the config sets the default of -Cache; a bad value is a config error' {
        $cas = Join-Path $Dir 'cas-config'
        $config = Join-Path $Dir 'cache-config.json'
        '{"config_version":"1.1","cache":{"mode":"readwrite","max_age_days":3}}' | Set-Content -LiteralPath $config
        (Test-RequiemConfig -Path $config).Valid | Should -BeTrue
        $env:REQUIEM_CONFIG = $config
        try {
            $ws = New-Workspace 'config'
            $request = New-CacheRequest $ws
            $null = Invoke-RequiemExec -Request $request -Cas $cas
            $hit = Invoke-RequiemExec -Request $request -Cas $cas
            $hit.CacheHit | Should -BeTrue
            $entry = Get-RequiemCacheEntry -Key $hit.CacheKey -Cas $cas
            ($entry.ExpiresAt - $entry.CreatedAt).TotalDays | Should -Be 3
            (Invoke-RequiemExec -Request $request -Cas $cas -Cache Off).CacheHit | Should -BeFalse -Because '-Cache wins over the config'
            Get-RunCount $ws | Should -Be 2
        }
        finally { Remove-Item Env:REQUIEM_CONFIG }
        '{"config_version":"1.1","cache":{"mode":"sometimes","max_age_days":0}}' | Set-Content -LiteralPath $config
        $report = Test-RequiemConfig -Path $config
        $report.Valid | Should -BeFalse
        $report.Errors.Field | Should -Contain '$.cache.mode'
        $report.Errors.Field | Should -Contain '$.cache.max_age_days'
    }

    It 'keeps the objects of an unexpired entry through GC, and lets an expired entry go' {
        $cas = Join-Path $Dir 'cas-gc'
        $ws = New-Workspace 'gc'
        $request = New-CacheRequest $ws
        $recorded = Invoke-RequiemExec -Request $request -Cas $cas -Cache ReadWrite
        # Only the entry keeps the objects now (the result ref is gone); a zero grace period removes everything else.
        Remove-RequiemCasRef -Cas $cas -Name "results/$($recorded.ResultDigest)"
        $null = Optimize-RequiemCas -Cas $cas -GracePeriod 0 -Force
        Remove-Item -LiteralPath (Join-Path $ws 'out.txt')
        $hit = Invoke-RequiemExec -Request $request -Cas $cas -Cache Read
        $hit.CacheHit | Should -BeTrue
        [IO.File]::ReadAllText((Join-Path $ws 'out.txt')) | Should -Be 'ALPHABRAVO'

        # Age the entry past cache.max_age_days (7 by default): it is no longer used nor a root.
        $entry = Get-RequiemCacheEntry -Key $recorded.CacheKey -Cas $cas
        $text = [IO.File]::ReadAllText($entry.Path)
        $created = $entry.CreatedAt.ToString('yyyy-MM-ddTHH:mm:ss.fffZ', [cultureinfo]::InvariantCulture)
        [IO.File]::WriteAllText($entry.Path, $text.Replace($created, '2000-01-01T00:00:00.000Z'))
        (Get-RequiemCacheEntry -Key $recorded.CacheKey -Cas $cas).Expired | Should -BeTrue
        $report = Optimize-RequiemCas -Cas $cas -GracePeriod 0 -Force
        $report.Candidates.Hash | Should -Contain $recorded.OutputFiles[0].Digest
        $again = Invoke-RequiemExec -Request $request -Cas $cas -Cache Read
        $again.CacheHit | Should -BeFalse
        Get-RunCount $ws | Should -Be 2
    }

    It 'counts hits, misses and writes in the metrics' {
        $ws = New-Workspace 'metrics'
        $metrics = Join-Path $Dir 'metrics'
        $json = Invoke-FreshPwsh -Environment @{ REQUIEM_METRICS_DIR = $metrics; REQUIEM_CAS = (Join-Path $Dir 'cas-metrics') } -Script @"
Import-Module '$ModulePath'
`$request = @{ command = '/bin/sh'; argv = @('-c', 'cat a.txt > out.txt'); workspace_root = '$ws'; inputs = @('a.txt'); outputs = @('out.txt'); policy = @{ filesystem = 'hermetic'; deny_network = `$true } }
`$null = Invoke-RequiemExec -Request `$request -Cache ReadWrite
`$null = Invoke-RequiemExec -Request `$request -Cache ReadWrite
`$null = Invoke-RequiemExec -Request `$request -Cache Read
Get-RequiemMetric -Format Json
"@
        $m = ($json -join "`n") | ConvertFrom-Json
        $m.action_cache_misses_total | Should -Be 1
        $m.action_cache_writes_total | Should -Be 1
        $m.action_cache_hits_total | Should -Be 2
        $m.exec_total | Should -Be 1
    }
}

Describe 'Get-RequiemCacheEntry' -Skip:$NoHermetic {
    BeforeAll {
        $script:Cas = Join-Path $Dir 'cas-get'
        $script:Ws = New-Workspace 'get'
        $script:Recorded = Invoke-RequiemExec -Request (New-CacheRequest $Ws) -Cas $Cas -Cache ReadWrite
    }

    It 'gets an entry by a key prefix, and by a piped result' {
        (Get-RequiemCacheEntry -Key $Recorded.CacheKey.Substring(0, 8) -Cas $Cas).Key | Should -Be $Recorded.CacheKey
        ($Recorded | Get-RequiemCacheEntry -Cas $Cas).Key | Should -Be $Recorded.CacheKey
    }

    It 'lists entries filtered by command, with a table view that fits 80 columns' {
        @(Get-RequiemCacheEntry -Cas $Cas -Command '/bin/s*').Key | Should -Contain $Recorded.CacheKey
        @(Get-RequiemCacheEntry -Cas $Cas -Command '/usr/bin/nothing') | Should -BeNullOrEmpty
        $text = Get-RequiemCacheEntry -Cas $Cas | Out-String -Width 80
        $text | Should -BeLike "*$($Recorded.CacheKey.Substring(0, 12))*/bin/sh*"
    }

    It 'reports a missing key as CacheEntryNotFound with the key as target' {
        $missing = 'f' * 64
        $err = $null
        $null = Get-RequiemCacheEntry -Key $missing -Cas $Cas -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -Be 'CacheEntryNotFound,Requiem.PowerShell.GetRequiemCacheEntryCommand'
        $err[0].TargetObject | Should -Be $missing
    }

    It 'does not create a store that does not exist (CasNotFound)' {
        $none = Join-Path $Dir 'no-store-here'
        { Get-RequiemCacheEntry -Cas $none } | Should -Throw -ErrorId 'CasNotFound,Requiem.PowerShell.GetRequiemCacheEntryCommand'
        Test-Path -LiteralPath $none | Should -BeFalse
    }

    It 'explains a request read from a file (-Path)' {
        $file = Join-Path $Dir 'get-request.json'
        New-CacheRequest $Ws | ConvertTo-Json -Depth 5 | Set-Content -LiteralPath $file
        $why = Get-RequiemCacheEntry -Path $file -Cas $Cas
        $why.Hit | Should -BeTrue
        $why.Entry.Key | Should -Be $Recorded.CacheKey
    }
}
