BeforeAll {
    . (Join-Path $PSScriptRoot 'TestSetup.ps1')
    $script:Dir = New-TestDirectory
}
AfterAll { Remove-Item -Recurse -Force $script:Dir -ErrorAction Ignore }

Describe 'Get-RequiemMetric' {
    It 'counts digests across separate pwsh processes' {
        $metrics = Join-Path $Dir 'm1'
        $env = @{ REQUIEM_METRICS_DIR = $metrics }
        Invoke-FreshPwsh -Environment $env -Script "Import-Module '$ModulePath'; 'a','b','c' | Get-RequiemDigest | Out-Null" | Out-Null
        Invoke-FreshPwsh -Environment $env -Script "Import-Module '$ModulePath'; 'dd' | Get-RequiemDigest | Out-Null" | Out-Null
        $json = Invoke-FreshPwsh -Environment $env -Script "Import-Module '$ModulePath'; Get-RequiemMetric -Format Json"
        $m = ($json -join "`n") | ConvertFrom-Json
        $m.digest_total | Should -Be 4
        $m.digest_bytes_total | Should -Be 5
        $m.cas_hit_rate | Should -Be 0
    }

    It 'returns an object with the counters of this session' {
        $metrics = Join-Path $Dir 'm2'
        $out = Invoke-FreshPwsh -Environment @{ REQUIEM_METRICS_DIR = $metrics } -Script @"
Import-Module '$ModulePath'
Get-RequiemDigest -InputObject 'hello' | Out-Null
`$m = Get-RequiemMetric
`$m.GetType().Name; `$m.DigestTotal; `$m.Sources
"@
        $out[0] | Should -Be 'MetricsSnapshot'
        $out[1] | Should -Be '1'
        $out[2] | Should -Be '1'
    }

    It 'emits Prometheus text that promtool accepts' -Skip:(-not (Get-Command promtool -ErrorAction Ignore)) {
        $metrics = Join-Path $Dir 'm3'
        $text = Invoke-FreshPwsh -Environment @{ REQUIEM_METRICS_DIR = $metrics } -Script "Import-Module '$ModulePath'; 'x' | Get-RequiemDigest | Out-Null; Get-RequiemMetric -Format Prometheus"
        $file = Join-Path $Dir 'metrics.prom'
        Set-Content -LiteralPath $file -Value ($text -join "`n")
        $lint = Get-Content -LiteralPath $file -Raw | promtool check metrics 2>&1
        $LASTEXITCODE | Should -Be 0 -Because ($lint -join "`n")
        ($text -join "`n") | Should -Match '(?m)^# TYPE requiem_exec_total counter$'
        ($text -join "`n") | Should -Match '(?m)^requiem_digest_total 1$'
        ($text -join "`n") | Should -Match '(?m)^# TYPE requiem_cas_hit_rate gauge$'
    }

    It 'folds the files of exited processes into base.json without losing counts' {
        $metrics = Join-Path $Dir 'm4'
        New-Item -ItemType Directory $metrics | Out-Null
        # 70 files of processes that no longer exist, one digest each.
        1..70 | ForEach-Object { Set-Content (Join-Path $metrics "p-$(999000 + $_)-1.json") '{"digest_total":1}' }
        $json = Invoke-FreshPwsh -Environment @{ REQUIEM_METRICS_DIR = $metrics } -Script "Import-Module '$ModulePath'; Get-RequiemMetric -Format Json"
        (($json -join "`n") | ConvertFrom-Json).digest_total | Should -Be 70
        (Get-ChildItem $metrics -Filter 'p-99*').Count | Should -Be 0
        Test-Path (Join-Path $metrics 'base.json') | Should -BeTrue
        $again = Invoke-FreshPwsh -Environment @{ REQUIEM_METRICS_DIR = $metrics } -Script "Import-Module '$ModulePath'; (Get-RequiemMetric).DigestTotal"
        $again | Should -Contain '70'
    }

    It 'counts executions, failures, timeouts and replays' {
        $metrics = Join-Path $Dir 'm5'
        $ws = Join-Path $Dir 'ws5'
        New-Item -ItemType Directory $ws | Out-Null
        $json = Invoke-FreshPwsh -Environment @{ REQUIEM_METRICS_DIR = $metrics; REQUIEM_CAS = (Join-Path $Dir 'cas5') } -Script @"
Import-Module '$ModulePath'
`$ok = Invoke-RequiemExec -Request @{ command = '/bin/true'; argv = @(); workspace_root = '$ws' }
`$null = Invoke-RequiemExec -Request @{ command = '/bin/sh'; argv = @('-c', 'exit 3'); workspace_root = '$ws' }
`$null = Invoke-RequiemExec -Request @{ command = '/bin/sleep'; argv = @('5'); workspace_root = '$ws'; timeout_ms = 200 }
`$null = Invoke-RequiemReplay -Result `$ok
Get-RequiemMetric -Format Json
"@
        $m = ($json -join "`n") | ConvertFrom-Json
        $m.exec_total | Should -Be 4      # three runs and the replay's re-execution
        $m.exec_failed_total | Should -Be 2
        $m.exec_timed_out_total | Should -Be 1
        $m.replay_total | Should -Be 1
        $m.replay_mismatch_total | Should -Be 0
    }

    It 'counts CAS puts, deduplicated puts (the hit rate) and verified reads' {
        $metrics = Join-Path $Dir 'm6'
        $cas = Join-Path $Dir 'cas6'
        $json = Invoke-FreshPwsh -Environment @{ REQUIEM_METRICS_DIR = $metrics } -Script @"
Import-Module '$ModulePath'
'one', 'two', 'one', 'three' | Add-RequiemCasObject -Cas '$cas' | Out-Null
`$h = ('two' | Add-RequiemCasObject -Cas '$cas').Hash
`$null = Export-RequiemCasObject -Cas '$cas' -Hash `$h -Raw
Get-RequiemMetric -Format Json
"@
        $m = ($json -join "`n") | ConvertFrom-Json
        $m.cas_put_total | Should -Be 5
        $m.cas_put_deduplicated_total | Should -Be 2
        $m.cas_hit_rate | Should -Be 0.4
        $m.cas_read_total | Should -BeGreaterOrEqual 1
    }
}

# A long-lived machine: many pwsh processes come and go. Each writer is a fresh pwsh that imports the module and hashes
# three strings (digest_total += 3). 200 processes, 8 at a time; $env:REQUIEM_TEST_METRICS_PROCESSES sets another
# number for a quicker local run.
Describe 'Metrics over many processes' {
    BeforeAll {
        $script:Processes = if ($env:REQUIEM_TEST_METRICS_PROCESSES) { [int]$env:REQUIEM_TEST_METRICS_PROCESSES } else { 200 }
        $script:Many = Join-Path $Dir 'many'
        New-Item -ItemType Directory $Many | Out-Null
        # Months of history: 100 files of processes that have ended, one digest each.
        1..100 | ForEach-Object { Set-Content (Join-Path $Many "p-$(4000000 + $_)-1.json") '{"digest_total":1}' }
        $script:Writer = "Import-Module '$ModulePath'; 'a','b','c' | Get-RequiemDigest | Out-Null"
        $script:SavedMetricsDir = $env:REQUIEM_METRICS_DIR

        function script:Start-Writers([int] $Count) {
            $env:REQUIEM_METRICS_DIR = $Many
            try {
                1..$Count | ForEach-Object -ThrottleLimit 8 -Parallel {
                    & $using:Pwsh -NoProfile -NonInteractive -Command $using:Writer
                    if ($LASTEXITCODE -ne 0) { throw "writer exited $LASTEXITCODE" }
                }
            }
            finally { $env:REQUIEM_METRICS_DIR = $SavedMetricsDir }
        }
    }
    AfterAll { $env:REQUIEM_METRICS_DIR = $SavedMetricsDir }

    It 'folds ended processes as they start, so the folder stays bounded without any reader' {
        $first = [int][math]::Floor($Processes / 2)
        Start-Writers $first
        $json = @(Get-ChildItem $Many -Filter '*.json')
        $json.Count | Should -BeLessOrEqual 34   # MetricsRegistry.CompactAbove (32) + base.json + the last writer's own file
        Join-Path $Many 'base.json' | Should -Exist
    }

    It 'gives exact totals while 4 processes compact and read as others write' {
        $first = [int][math]::Floor($Processes / 2)
        $second = $Processes - $first
        $stop = Join-Path $Dir 'many.stop'
        $reader = @"
Import-Module '$ModulePath'
`$seen = [Collections.Generic.List[long]]::new()
while (-not (Test-Path '$stop')) { `$seen.Add((Get-RequiemMetric).DigestTotal); Start-Sleep -Milliseconds 20 }
`$seen.Add((Get-RequiemMetric).DigestTotal)
`$seen -join ','
"@
        $env:REQUIEM_METRICS_DIR = $Many
        try {
            $compactors = 1..4 | ForEach-Object {
                $out = Join-Path $Dir "compactor-$_.txt"
                [pscustomobject]@{ Out = $out; Process = Start-Process $Pwsh -ArgumentList '-NoProfile', '-NonInteractive', '-Command', $reader -RedirectStandardOutput $out -PassThru }
            }
        }
        finally { $env:REQUIEM_METRICS_DIR = $SavedMetricsDir }
        try { Start-Writers $second }
        finally {
            Set-Content $stop 'done'
            $compactors.Process | Wait-Process -Timeout 300
        }
        $expected = 100 + 3 * $Processes
        foreach ($c in $compactors) {
            $readings = @((Get-Content $c.Out -Raw).Trim() -split ',' | ForEach-Object { [long]$_ })
            $readings.Count | Should -BeGreaterThan 1
            # Never doubled (above the final figure) and never lost (a later reading below an earlier one).
            ($readings | Measure-Object -Maximum).Maximum | Should -BeLessOrEqual $expected
            for ($i = 1; $i -lt $readings.Count; $i++) { $readings[$i] | Should -BeGreaterOrEqual $readings[$i - 1] }
            $readings[-1] | Should -Be $expected
        }
        $final = Invoke-FreshPwsh -Environment @{ REQUIEM_METRICS_DIR = $Many } -Script "Import-Module '$ModulePath'; (Get-RequiemMetric -Format Json | ConvertFrom-Json).digest_total"
        $final | Should -Be "$expected"
        # Every process has ended: one totals file and the lock file remain.
        @(Get-ChildItem $Many -Filter 'p-*.json').Count | Should -Be 0
        @(Get-ChildItem $Many).Name | Sort-Object | Should -Be @('base.json', 'metrics.lock')
    }
}
