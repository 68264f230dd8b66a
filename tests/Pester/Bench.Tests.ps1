BeforeDiscovery {
    # Imported at discovery so that -Skip guards that ask for other cmdlets (Invoke-RequiemReplay) see them.
    Import-Module (Join-Path $PSScriptRoot '../../out/Requiem/Requiem.psd1')
}

BeforeAll {
    . (Join-Path $PSScriptRoot 'TestSetup.ps1')
    $script:Dir = New-TestDirectory
    $script:CasDir = Join-Path $Dir 'cas'
    $script:SavedCas = $env:REQUIEM_CAS
    $env:REQUIEM_CAS = $CasDir
    $script:PesterModule = (Get-Module Pester).Path
    $script:HelperModule = Join-Path $RepoRoot 'out/Requiem.Pester/Requiem.Pester.psd1'
    Import-Module $HelperModule -Force

    function script:New-SpecFile {
        # A spec whose case runs ./work.sh: the spec (and its digest) stays the same while work.sh changes, as when
        # the code under test changes between the baseline and the current run.
        param([string] $Folder, [int] $Runs = 10)
        New-Item -ItemType Directory -Force -Path $Folder | Out-Null
        $spec = @{ name = 'sleeper'; warmup = 1; runs = $Runs; cases = @(@{ name = 'work'; command = 'sh'; argv = @('./work.sh'); cwd = $Folder }) }
        $path = Join-Path $Folder 'bench.json'
        $spec | ConvertTo-Json -Depth 5 | Set-Content -LiteralPath $path
        return $path
    }
    function script:Set-Work([string] $Folder, [string] $Body) { Set-Content -LiteralPath (Join-Path $Folder 'work.sh') -Value $Body }
    function script:Get-CasBytes([string] $Hash) {
        [IO.File]::ReadAllBytes((Join-Path $CasDir "objects/$($Hash.Substring(0,2))/$Hash"))
    }

    # The regression pair, measured once and shared: baseline sleeps 10 ms, current 50 ms, same spec.
    $script:RegDir = Join-Path $Dir 'regression'
    $script:RegSpec = New-SpecFile -Folder $RegDir
    Set-Work $RegDir 'sleep 0.01'
    $script:Base10 = Invoke-RequiemBench -Spec $RegSpec -OutFile (Join-Path $RegDir 'baseline.json')
    Set-Work $RegDir 'sleep 0.05'
    $script:Cur50 = Invoke-RequiemBench -Spec $RegSpec -OutFile (Join-Path $RegDir 'current.json')
}

AfterAll {
    $env:REQUIEM_CAS = $script:SavedCas
    Remove-Item -Recurse -Force $script:Dir -ErrorAction Ignore
}

Describe 'Invoke-RequiemBench' {
    It 'runs a shell command line -Runs times after -Warmup runs and summarises every metric' {
        $r = Invoke-RequiemBench -Command 'echo hello' -Runs 6 -Warmup 2
        $r.PSObject.TypeNames | Should -Contain 'Requiem.Engine.Bench.BenchReport'
        $c = $r.Cases[0]
        $c.Name | Should -Be 'echo hello'
        $c.Runs.Count | Should -Be 8
        @($c.Runs | Where-Object Warmup).Count | Should -Be 2
        $c.Statistics.WallMs.Count | Should -Be 6
        $measured = @($c.Runs | Where-Object { -not $_.Warmup } | ForEach-Object WallMs | Sort-Object)
        $c.Statistics.WallMs.Min | Should -Be $measured[0]
        $c.Statistics.WallMs.Max | Should -Be $measured[-1]
        # The median interpolates as lo + (hi - lo) / 2, which can differ from (lo + hi) / 2 in the last bit.
        [Math]::Abs($c.Statistics.WallMs.Median - ($measured[2] + $measured[3]) / 2) | Should -BeLessThan 1e-9
        $c.Statistics.WallMs.Mean | Should -BeGreaterThan 0
        $c.Statistics.UserMs | Should -Not -BeNullOrEmpty
        $c.Statistics.SystemMs | Should -Not -BeNullOrEmpty
        $r.Machine.Cores | Should -Be ([Environment]::ProcessorCount)
        $r.Machine.Runtime | Should -BeLike '.NET*'
        $r.Tool.Version | Should -Be (Get-Module Requiem).Version.ToString()
        $r.SpecDigest | Should -Match '^[0-9a-f]{64}$'
        $r.Measurement | Should -Be ($IsLinux ? 'linux-wait4' : $IsWindows ? 'windows-job' : 'process-api')
    }

    It 'has a portable path (REQUIEM_BENCH_PORTABLE=1) that still measures wall time and captures output' {
        $out = Invoke-FreshPwsh -Environment @{ REQUIEM_BENCH_PORTABLE = '1'; REQUIEM_CAS = $CasDir } -Script @"
Import-Module '$ModulePath'
`$r = Invoke-RequiemBench -Command 'sleep 0.1; echo portable' -Runs 2 -Warmup 0 -NoCalibration
"`$(`$r.Measurement)|`$(`$r.Cases[0].Statistics.WallMs.Min)|`$(`$r.Cases[0].Runs[0].StdoutDigest)"
"@
        $parts = ("$($out | Select-Object -Last 1)").Split('|')
        $parts[0] | Should -Be 'process-api'
        [double]$parts[1] | Should -BeGreaterOrEqual 95
        $parts[2] | Should -Be (Get-RequiemDigest -InputObject "portable`n" -Domain Cas).Hash
    }

    It 'captures stdout into the CAS and digests each run as documented (res: over canonical JSON)' {
        $r = Invoke-RequiemBench -Command 'echo hello; echo oops >&2; exit 3' -Runs 2 -Warmup 0
        $run = $r.Cases[0].Runs[0]
        $run.ExitCode | Should -Be 3
        $run.StdoutDigest | Should -Be (Get-RequiemDigest -InputObject "hello`n" -Domain Cas).Hash
        $run.StderrDigest | Should -Be (Get-RequiemDigest -InputObject "oops`n" -Domain Cas).Hash
        [Text.Encoding]::UTF8.GetString((Get-CasBytes $run.StdoutDigest)) | Should -Be "hello`n"
        $canonical = '{"exit_code":3,"output_files":{},"stderr_digest":"' + $run.StderrDigest + '","stdout_digest":"' + $run.StdoutDigest + '"}'
        $run.ResultDigest | Should -Be (Get-RequiemDigest -InputObject $canonical -Domain Result).Hash
        $r.Cases[0].Statistics.FailedRuns | Should -Be 2
    }

    It 'measures wall time against a known sleep, and CPU time of the whole process tree' {
        $sleep = Invoke-RequiemBench -Command 'sleep 0.2' -Runs 2 -Warmup 0
        $sleep.Cases[0].Statistics.WallMs.Min | Should -BeGreaterOrEqual 195
        $sleep.Cases[0].Statistics.WallMs.Max | Should -BeLessThan 1500
        $sleep.Cases[0].Statistics.UserMs.Median | Should -BeLessThan 50

        $loop = 'i=0; while [ $i -lt 150000 ]; do i=$((i+1)); done'
        $one = Invoke-RequiemBench -Command $loop -Runs 2 -Warmup 0
        $two = Invoke-RequiemBench -Command "($loop) & ($loop) & wait" -Runs 2 -Warmup 0
        $cpu1 = $one.Cases[0].Statistics.UserMs.Median + $one.Cases[0].Statistics.SystemMs.Median
        $cpu2 = $two.Cases[0].Statistics.UserMs.Median + $two.Cases[0].Statistics.SystemMs.Median
        $cpu1 | Should -BeGreaterThan 30
        # Both background subshells are grandchildren: their CPU time counts because the tree is measured (without
        # them the sh that waits would use almost none; two loops measure ~2x one, less when the cores are shared).
        ($cpu2 / $cpu1) | Should -BeGreaterThan 1.25
    }

    It 'reports peak RSS of the tree in agreement with GNU time, and no figure where the kernel cannot tell' -Skip:(-not ($IsLinux -and (Test-Path /usr/bin/time) -and (Get-Command python3 -ErrorAction Ignore))) {
        # The kernel charges the host's own peak RSS to a freshly spawned child, and the module reports no figure at or
        # below that floor: allocate well above this pwsh's peak (which grows with the test files run before this one).
        $mb = [math]::Max(300, [int]([Diagnostics.Process]::GetCurrentProcess().PeakWorkingSet64 / 1MB) + 200)
        $py = "x = bytearray($mb * 1024 * 1024)" + "`n" + 'for i in range(0, len(x), 4096): x[i] = 1'
        Set-Content -LiteralPath (Join-Path $Dir 'alloc.py') -Value $py
        $r = Invoke-RequiemBench -Spec @{ runs = 2; warmup = 0; cases = @(@{ name = 'alloc'; command = 'python3'; argv = @((Join-Path $Dir 'alloc.py')) }) }
        $ours = $r.Cases[0].Statistics.MaxRssKb.Median
        $gnu = [double]("$(& /usr/bin/time -f '%M' python3 (Join-Path $Dir 'alloc.py') 2>&1 | Select-Object -Last 1)".Trim())
        $ours | Should -BeGreaterThan ($mb * 1024)
        ([math]::Abs($ours - $gnu) / $gnu) | Should -BeLessThan 0.1
        # /bin/true is far below the host's own peak RSS, which the kernel charges to a freshly exec'd child.
        $t = Invoke-RequiemBench -Spec @{ runs = 1; warmup = 0; cases = @(@{ name = 'true'; command = '/bin/true' }) }
        $t.Cases[0].Runs[0].MaxRssKb | Should -BeNullOrEmpty
        $t.Cases[0].Runs[0].MaxRssFloorKb | Should -BeGreaterThan 10000
    }

    It 'reports a signal death, and kills a run (its whole process group) at the timeout' {
        $k = Invoke-RequiemBench -Command 'kill -9 $$' -Runs 1 -Warmup 0
        $k.Cases[0].Runs[0].ExitCode | Should -Be 137
        $k.Cases[0].Runs[0].Signal | Should -Be 9
        $t = Invoke-RequiemBench -Command 'sleep 5 & sleep 5; wait' -Runs 1 -Warmup 0 -TimeoutSeconds 0.3
        $t.Cases[0].Runs[0].TimedOut | Should -BeTrue
        $t.Cases[0].Runs[0].WallMs | Should -BeLessThan 3000
    }

    It 'runs prepare before every run and cleanup once, with env and cwd from the spec' {
        $d = Join-Path $Dir 'prep'
        New-Item -ItemType Directory -Force $d | Out-Null
        $spec = @{
            Warmup = 1; Runs = 3; Prepare = 'echo p >> prepared.log'; Cleanup = 'echo c >> cleaned.log'
            Cases = @(@{ Name = 'env'; CommandLine = 'printf %s "$GREETING"'; Env = @{ GREETING = 'hi there' }; Cwd = $d })
        }
        $r = Invoke-RequiemBench -Spec $spec
        @(Get-Content (Join-Path $d 'prepared.log')).Count | Should -Be 4
        @(Get-Content (Join-Path $d 'cleaned.log')).Count | Should -Be 1
        $r.Cases[0].Runs[0].StdoutDigest | Should -Be (Get-RequiemDigest -InputObject 'hi there' -Domain Cas).Hash
        $r.Spec.Cases[0].CommandLine | Should -Be 'printf %s "$GREETING"'
    }

    It 'finds a bare program on the PATH the case sets' {
        $bin = Join-Path $Dir 'bin'
        New-Item -ItemType Directory -Force $bin | Out-Null
        Set-Content -LiteralPath (Join-Path $bin 'mytool') -Value "#!/bin/sh`necho from-mytool"
        & chmod +x (Join-Path $bin 'mytool')
        $r = Invoke-RequiemBench -Spec @{ runs = 1; warmup = 0; cases = @(@{ name = 't'; command = 'mytool'; env = @{ PATH = "$($bin):/usr/bin:/bin" } }) }
        $r.Cases[0].Runs[0].ExitCode | Should -Be 0
        $r.Cases[0].Runs[0].StdoutDigest | Should -Be (Get-RequiemDigest -InputObject "from-mytool`n" -Domain Cas).Hash
    }

    It 'keeps measuring until -MinSeconds of measured time' {
        $r = Invoke-RequiemBench -Command 'sleep 0.02' -Runs 2 -Warmup 0 -MinSeconds 0.3
        $r.Cases[0].Statistics.WallMs.Count | Should -BeGreaterThan 5
        ($r.Cases[0].Runs | Measure-Object WallMs -Sum).Sum | Should -BeGreaterOrEqual 300
    }

    It 'reports progress with runs done, remaining and an estimate' {
        $ps = [powershell]::Create()
        try {
            $null = $ps.AddScript("Import-Module '$ModulePath'; `$env:REQUIEM_CAS = '$CasDir'; Invoke-RequiemBench -Command 'sleep 0.1' -Runs 6 -Warmup 0")
            $null = $ps.Invoke()
            $status = @($ps.Streams.Progress | Where-Object { $_.RecordType -ne 'Completed' } | ForEach-Object StatusDescription)
            $status.Count | Should -BeGreaterThan 0
            $status[0] | Should -Match '\d+ runs done, \d+ remaining, about [\d.]+ s left'
            $status.Count | Should -BeLessThan 7   # throttled: a few updates a second at most
        }
        finally { $ps.Dispose() }
    }

    It 'stops promptly on Ctrl+C (StopProcessing) and kills the running command' {
        $ps = [powershell]::Create()
        try {
            $null = $ps.AddScript("Import-Module '$ModulePath'; `$env:REQUIEM_CAS = '$CasDir'; Invoke-RequiemBench -Command 'sleep 30' -Runs 3 -Warmup 0")
            $async = $ps.BeginInvoke()
            Start-Sleep -Milliseconds 800
            $sw = [Diagnostics.Stopwatch]::StartNew()
            $ps.Stop()
            $sw.Elapsed.TotalSeconds | Should -BeLessThan 5
            $async.IsCompleted | Should -BeTrue
            @(Get-Process sleep -ErrorAction Ignore | Where-Object { $_.CommandLine -eq 'sleep 30' }).Count | Should -Be 0
        }
        finally { $ps.Dispose() }
    }

    It 'refuses a bad spec with InvalidBenchSpec naming the problem: <What>' -ForEach @(
        @{ What = 'no cases'; Spec = @{ cases = @() } }
        @{ What = 'both command_line and command'; Spec = @{ cases = @(@{ name = 'x'; command_line = 'true'; command = 'true' }) } }
        @{ What = 'duplicate names'; Spec = @{ cases = @(@{ name = 'x'; command_line = 'true' }, @{ name = 'x'; command_line = 'true' }) } }
        @{ What = 'runs 0'; Spec = @{ runs = 0; cases = @(@{ name = 'x'; command_line = 'true' }) } }
    ) {
        { Invoke-RequiemBench -Spec $Spec } | Should -Throw -ErrorId 'InvalidBenchSpec,Requiem.PowerShell.InvokeRequiemBenchCommand'
    }

    It 'refuses an unknown spec field and bad spec JSON with InvalidJson' {
        { Invoke-RequiemBench -Spec @{ runz = 3; cases = @(@{ name = 'x'; command_line = 'true' }) } } |
            Should -Throw -ErrorId 'InvalidJson,Requiem.PowerShell.InvokeRequiemBenchCommand'
        $bad = Join-Path $Dir 'bad-spec.json'
        Set-Content -LiteralPath $bad -Value '{"cases": [ {"name": "x", '
        { Invoke-RequiemBench -Spec $bad } | Should -Throw -ErrorId 'InvalidJson,Requiem.PowerShell.InvokeRequiemBenchCommand'
    }

    It 'says which program could not be started' {
        $err = { Invoke-RequiemBench -Spec @{ cases = @(@{ name = 'x'; command = 'no-such-program-xyz' }) } } |
            Should -Throw -ErrorId 'BenchLaunchFailed,Requiem.PowerShell.InvokeRequiemBenchCommand' -PassThru
        $err.TargetObject | Should -Be 'no-such-program-xyz'
    }

    It 'produces reports and specs valid against the shipped JSON Schemas (python jsonschema)' -Skip:(-not (Get-Command python3 -ErrorAction Ignore)) {
        & python3 -c 'import jsonschema, referencing' 2>$null
        if ($LASTEXITCODE -ne 0) { Set-ItResult -Skipped -Because 'python3 jsonschema >= 4.18 (with referencing) is not installed'; return }
        $schemas = Join-Path (Split-Path $ModulePath) 'schemas'
        $report = Join-Path $RegDir 'baseline.json'
        $script = @"
import json, sys, jsonschema
from referencing import Registry, Resource
spec_schema = json.load(open('$schemas/bench-spec.schema.json'))
report_schema = json.load(open('$schemas/bench-report.schema.json'))
reg = Registry().with_resources([(spec_schema['`$id'], Resource.from_contents(spec_schema)), ('bench-spec.schema.json', Resource.from_contents(spec_schema))])
jsonschema.Draft202012Validator(report_schema, registry=reg).validate(json.load(open('$report')))
jsonschema.Draft202012Validator(spec_schema).validate(json.load(open('$RegSpec')))
bad = {'cases': [{'name': 'x', 'command_line': 'a', 'command': 'b'}]}
print('bad-accepted' if jsonschema.Draft202012Validator(spec_schema).is_valid(bad) else 'ok')
"@
        $out = $script | python3 - 2>&1
        $LASTEXITCODE | Should -Be 0 -Because ($out -join "`n")
        $out | Should -Be 'ok'
    }
}

Describe 'Compare-RequiemBench' {
    It 'calls a 50 ms case against a 10 ms baseline a regression' {
        $cmp = Compare-RequiemBench -Baseline $Base10 -Current $Cur50
        $cmp.Regressed | Should -BeTrue
        $cmp.RegressedCases | Should -Be @('work')
        $wall = $cmp.Cases[0].Metrics | Where-Object Metric -eq 'wall_ms'
        $wall.Regressed | Should -BeTrue
        $wall.ChangePercent | Should -BeGreaterThan 150
        $wall.PValueOverThreshold | Should -BeLessThan 0.05
        $wall.RatioCiLow | Should -BeGreaterThan 2
        $wall.Statement | Should -Match 'regressed'
    }

    It 'calls the reverse an improvement, not a regression' {
        $cmp = Compare-RequiemBench -Baseline $Cur50 -Current $Base10
        $cmp.Regressed | Should -BeFalse
        $cmp.ImprovedCases | Should -Be @('work')
    }

    It 'reads reports from paths and from the pipeline' {
        $cmp = Get-Item (Join-Path $RegDir 'current.json') | Compare-RequiemBench -Baseline (Join-Path $RegDir 'baseline.json')
        $cmp.Regressed | Should -BeTrue
        $cmp2 = $Cur50 | Compare-RequiemBench -Baseline (Get-Content (Join-Path $RegDir 'baseline.json') -Raw | ConvertFrom-Json)
        $cmp2.Regressed | Should -BeTrue
    }

    It 'does not raise false alarms comparing a case with itself on a noisy machine (many repetitions)' {
        # Deliberately noisy: one CPU hog (it ends itself after 90 s even if this test dies) competes for the shared cores.
        $hogScript = Join-Path $Dir 'hog.sh'
        Set-Content -LiteralPath $hogScript -Value 'end=$(( $(date +%s) + 90 )); while [ $(date +%s) -lt $end ]; do i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; done'
        $hog = Start-Process -FilePath sh -ArgumentList $hogScript -PassThru -RedirectStandardOutput /dev/null -RedirectStandardError (Join-Path $Dir 'hog.err')
        try {
            $d = Join-Path $Dir 'noise'
            $spec = New-SpecFile -Folder $d -Runs 10
            Set-Work $d 'i=0; while [ $i -lt 3000 ]; do i=$((i+1)); done; sleep 0.01'
            $pairs = 20
            $gated = 0; $confirmed = 0; $naive = 0; $changes = @(); $details = @(); $loads = @()
            for ($i = 0; $i -lt $pairs; $i++) {
                $a = Invoke-RequiemBench -Spec $spec
                $b = Invoke-RequiemBench -Spec $spec
                $loads += $a.Machine.LoadAverage
                $cmp = Compare-RequiemBench -Baseline $a -Current $b -Threshold 10
                $w = $cmp.Cases[0].Metrics | Where-Object Metric -eq 'wall_ms'
                $rechecked = if ($cmp.Regressed) { Compare-RequiemBench -Baseline $a -Current $b -Threshold 10 -Recheck 2 } else { $cmp }
                if ($cmp.Regressed) { $gated++ }
                if ($rechecked.Regressed) { $confirmed++ }
                if ($w.ChangePercent -gt 10) { $naive++ }   # what a median-only threshold would have flagged
                $changes += $w.ChangePercent
                $details += [ordered]@{ machine_slowdown = $cmp.MachineSlowdownPercent; change = [math]::Round($w.ChangePercent, 2); low_quartile_change = [math]::Round($w.LowQuartileChangePercent, 2)
                    p_over_threshold = $w.PValueOverThreshold; regressed = $cmp.Regressed; regressed_after_recheck = $rechecked.Regressed }
            }
        }
        finally { Stop-Process -Id $hog.Id -ErrorAction Ignore }
        $result = [ordered]@{
            pairs = $pairs; runs_per_side = 10; threshold_percent = 10
            load_average_1m = [math]::Round(($loads | Measure-Object -Average).Average, 2)
            median_only_false_alarms = $naive; gate_false_alarms = $gated; gate_with_recheck_false_alarms = $confirmed
            gate_false_alarm_rate = $gated / $pairs; gate_with_recheck_false_alarm_rate = $confirmed / $pairs
            max_abs_median_change_percent = [math]::Round(($changes | ForEach-Object { [math]::Abs($_) } | Measure-Object -Maximum).Maximum, 2)
            comparisons = $details
        }
        $resultDir = Join-Path $RepoRoot 'out/test-results'
        New-Item -ItemType Directory -Force $resultDir | Out-Null
        $result | ConvertTo-Json -Depth 4 | Set-Content (Join-Path $resultDir 'bench-false-alarms.json')
        Write-Host ("False alarms, same case twice on a noisy machine (load {0}): median-only {1}/{4}, gate {2}/{4}, gate -Recheck 2 {3}/{4}; max |median change| {5}%" -f
            $result.load_average_1m, $naive, $gated, $confirmed, $pairs, $result.max_abs_median_change_percent)
        $gated | Should -BeLessOrEqual $naive
        ($confirmed / $pairs) | Should -BeLessOrEqual 0.05
    }

    It 'confirms a real regression when re-measuring (-Recheck)' {
        Push-Location $RegDir
        try {
            # work.sh still sleeps 50 ms: every re-measurement of the current code reproduces the slowdown.
            $cmp = Compare-RequiemBench -Baseline $Base10 -Current $Cur50 -Recheck 2
            $cmp.Regressed | Should -BeTrue
            $cmp.Rechecks | Should -Be 2
            $cmp.Cases[0].RecheckRegressed | Should -Be @($true, $true)
            # Put the fast code back: the "regression" no longer reproduces, so it is not confirmed.
            Set-Work $RegDir 'sleep 0.01'
            $cmp2 = Compare-RequiemBench -Baseline $Base10 -Current $Cur50 -Recheck 2
            $cmp2.Regressed | Should -BeFalse
            $cmp2.Rechecks | Should -BeGreaterOrEqual 1   # on a busy machine one re-measurement may itself be slow; not every one
            ($cmp2.Cases[0].Metrics | Where-Object Metric -eq 'wall_ms').Statement | Should -Match 'not reproduced when re-measured'
        }
        finally { Set-Work $RegDir 'sleep 0.05'; Pop-Location }
    }

    It 'ends with a terminating PerformanceRegression error naming the cases under -FailOnRegression' {
        $err = { Compare-RequiemBench -Baseline $Base10 -Current $Cur50 -FailOnRegression } |
            Should -Throw -ErrorId 'PerformanceRegression,Requiem.PowerShell.CompareRequiemBenchCommand' -PassThru
        $err.Exception.Message | Should -Match "Performance regression in 1 case\(s\): 'work'"
        $err.TargetObject.Regressed | Should -BeTrue
        # No regression: the gate passes and returns the comparison.
        (Compare-RequiemBench -Baseline $Base10 -Current $Base10 -FailOnRegression).Regressed | Should -BeFalse
    }

    It 'fails a Pester CI run with a clear message under the gate, and throws nothing without it' {
        $testFile = Join-Path $Dir 'Gate.Tests.ps1'
        $b = Join-Path $RegDir 'baseline.json'; $c = Join-Path $RegDir 'current.json'
        Set-Content -LiteralPath $testFile -Value @"
BeforeAll { Import-Module '$ModulePath'; Import-Module '$HelperModule' }
Describe 'perf' {
    It 'gate' { Compare-RequiemBench -Baseline '$b' -Current '$c' -FailOnRegression }
    It 'assertion' { '$c' | Should-NotRegress -Baseline '$b' }
    It 'no gate' { `$r = Compare-RequiemBench -Baseline '$b' -Current '$c'; `$r.Regressed | Should-BeTrue }
}
"@
        $out = Invoke-FreshPwsh -AllowFailure -Environment @{ REQUIEM_CAS = $CasDir } -Script @"
`$ErrorActionPreference = 'Stop'
Import-Module '$PesterModule'
`$c = New-PesterConfiguration; `$c.Run.Path = '$testFile'; `$c.Run.PassThru = `$true; `$c.Output.Verbosity = 'None'
`$r = Invoke-Pester -Configuration `$c
foreach (`$t in `$r.Tests) { "`$(`$t.Name)|`$(`$t.Result)|`$(`$t.ErrorRecord[0].Exception.Message)" }
"@
        $lines = @($out | ForEach-Object { "$_" } | Where-Object { $_ -match '^(gate|assertion|no gate)\|' })
        $lines.Count | Should -Be 3 -Because ($out -join "`n")
        $gate = $lines | Where-Object { $_ -like 'gate|*' }
        $gate | Should -Match '^gate\|Failed\|Performance regression in 1 case\(s\): .work. \(wall_ms .*regressed\)'
        $assertion = $lines | Where-Object { $_ -like 'assertion|*' }
        $assertion | Should -Match "^assertion\|Failed\|Expected no performance regression over 10%, but 1 case\(s\) regressed: 'work' wall_ms"
        $lines | Where-Object { $_ -like 'no gate|*' } | Should -Be 'no gate|Passed|'
    }

    It 'saves a baseline in the CAS (-SaveRef) and compares against it (-BaselineRef)' {
        $null = Invoke-RequiemBench -Command 'echo ref' -Name refcase -Runs 3 -SaveRef 'ci/main'
        Test-Path (Join-Path $CasDir 'refs/bench/ci/main') | Should -BeTrue
        $cur = Invoke-RequiemBench -Command 'echo ref' -Name refcase -Runs 3
        $cmp = Compare-RequiemBench -BaselineRef 'ci/main' -Current $cur -Threshold 1000
        $cmp.Regressed | Should -BeFalse
        $cmp.Cases[0].Name | Should -Be 'refcase'
        { Compare-RequiemBench -BaselineRef 'nope' -Current $cur } | Should -Throw -ErrorId 'BaselineNotFound,Requiem.PowerShell.CompareRequiemBenchCommand'
    }

    It 'round-trips reports and comparisons through JSON' {
        $path = Join-Path $Dir 'cmp.json'
        $cmp = Compare-RequiemBench -Baseline (Join-Path $RegDir 'baseline.json') -Current (Join-Path $RegDir 'current.json') -OutFile $path
        $back = Get-Content $path -Raw | ConvertFrom-Json
        $back.regressed | Should -BeTrue
        $back.bench_comparison_version | Should -Be '1'
        $back.cases[0].metrics[0].statement | Should -Be $cmp.Cases[0].Metrics[0].Statement
        $back.cases[0].metrics[0].p_value_over_threshold | Should -Be $cmp.Cases[0].Metrics[0].PValueOverThreshold
        # The saved comparison is a valid input again (Write-RequiemCiReport reads it back), giving the same summary.
        $fromObject = Join-Path $Dir 'sum1.md'; $fromFile = Join-Path $Dir 'sum2.md'
        Write-RequiemCiReport -InputObject $cmp -Provider GitHub -SummaryPath $fromObject 6>$null
        Write-RequiemCiReport -InputObject $path -Provider GitHub -SummaryPath $fromFile 6>$null
        Get-Content $fromFile -Raw | Should -Be (Get-Content $fromObject -Raw)
        # A report read back from its file compares exactly like the object it was written from.
        $again = Compare-RequiemBench -Baseline (Join-Path $RegDir 'baseline.json') -Current $Cur50
        $again.ToJson() | Should -Be (Compare-RequiemBench -Baseline $Base10 -Current $Cur50).ToJson()
        $reloaded = Get-Content (Join-Path $RegDir 'current.json') -Raw
        $reloaded.Trim() | Should -Be $Cur50.ToJson().Trim()
    }

    It 'gives typed errors for <What>' -ForEach @(
        @{ What = 'bad JSON'; Content = '{"bench_report_version": "1", '; Id = 'InvalidJson' }
        @{ What = 'a spec instead of a report'; Content = '{"cases": [{"name": "x", "command_line": "true"}]}'; Id = 'NotABenchReport' }
        @{ What = 'an unknown field'; Edit = { param($j) $j.Replace('"measurement"', '"bogus": 1, "measurement"') }; Id = 'InvalidJson' }
        @{ What = 'a missing required field'; Edit = { param($j) $j -replace '"spec_digest": "[0-9a-f]+",', '' }; Id = 'InvalidJson' }
        @{ What = 'statistics that do not match the runs'; Edit = { param($j) $j -replace '"count": 10,', '"count": 9,' }; Id = 'InvalidBenchReport' }
        @{ What = 'an unsupported version'; Edit = { param($j) $j.Replace('"bench_report_version": "1"', '"bench_report_version": "9"') }; Id = 'InvalidBenchReport' }
    ) {
        $path = Join-Path $Dir "broken-$($What -replace '\W','_').json"
        $text = if ($Content) { $Content } else { & $Edit (Get-Content (Join-Path $RegDir 'baseline.json') -Raw) }
        Set-Content -LiteralPath $path -Value $text
        { Compare-RequiemBench -Baseline $path -Current $Cur50 } | Should -Throw -ErrorId "$Id,Requiem.PowerShell.CompareRequiemBenchCommand"
    }

    It 'refuses reports of different specs (BenchSpecMismatch) unless -AllowSpecChange' {
        $other = Invoke-RequiemBench -Command 'echo other' -Name work -Runs 3
        $err = { Compare-RequiemBench -Baseline $Base10 -Current $other -ErrorAction Stop } |
            Should -Throw -ErrorId 'BenchSpecMismatch,Requiem.PowerShell.CompareRequiemBenchCommand' -PassThru
        $err.Exception.Message | Should -Match 'different bench specs'
        (Compare-RequiemBench -Baseline $Base10 -Current $other -AllowSpecChange).SpecChanged | Should -BeTrue
    }

    It 'refuses a current report that lacks a baseline case (BenchCaseMissing), and a missing file (FileNotFound)' {
        $renamed = Invoke-RequiemBench -Command 'echo x' -Name renamed -Runs 2
        $err = { Compare-RequiemBench -Baseline $Base10 -Current $renamed -AllowSpecChange -ErrorAction Stop } |
            Should -Throw -ErrorId 'BenchCaseMissing,Requiem.PowerShell.CompareRequiemBenchCommand' -PassThru
        $err.TargetObject | Should -Be 'work'
        { Compare-RequiemBench -Baseline (Join-Path $Dir 'absent.json') -Current $Cur50 } |
            Should -Throw -ErrorId 'FileNotFound,Requiem.PowerShell.CompareRequiemBenchCommand'
    }

    It 'writes an error for a bad piped current report and still compares the next one' {
        $out = @((Join-Path $Dir 'absent-current.json'), $Cur50) |
            Compare-RequiemBench -Baseline $Base10 -ErrorVariable errs -ErrorAction SilentlyContinue
        @($out).Count | Should -Be 1
        $out.Cases[0].Name | Should -Be 'work'
        @($errs).Count | Should -Be 1
        $errs[0].FullyQualifiedErrorId | Should -Be 'FileNotFound,Requiem.PowerShell.CompareRequiemBenchCommand'
    }

    It 'writes nothing with -WhatIf -OutFile' {
        $p = Join-Path $Dir 'whatif-compare.json'
        $null = Compare-RequiemBench -Baseline $Base10 -Current $Cur50 -OutFile $p -WhatIf
        Test-Path $p | Should -BeFalse
    }
}

Describe 'Measure-RequiemDrift' {
    It 'finds drift in a timestamp command, names stdout and shows the first difference from the CAS' {
        $r = Invoke-RequiemBench -Command 'date +%s.%N' -Runs 4 -Warmup 0
        $d = Measure-RequiemDrift -Bench $r
        $d.Deterministic | Should -BeFalse
        $d.VaryingFields | Should -Be @('stdout')
        $d.Cases[0].VaryingFields | Should -Be @('stdout')
        $d.Cases[0].DistinctResults | Should -Be 4
        $diff = $d.Cases[0].Differences[0]
        $diff.Field | Should -Be 'stdout'
        $diff.Line | Should -Be 1
        $diff.TextA | Should -Match '^\d+\.\d+$'
        $diff.TextB | Should -Match '^\d+\.\d+$'
        $diff.TextA | Should -Not -Be $diff.TextB
        $diff.TextA.Substring(0, $diff.Column - 1) | Should -Be $diff.TextB.Substring(0, $diff.Column - 1)
        $diff.TextA[$diff.Column - 1] | Should -Not -Be $diff.TextB[$diff.Column - 1]
    }

    It 'finds no drift in echo' {
        $d = Invoke-RequiemBench -Command 'echo stable' -Runs 5 | Measure-RequiemDrift
        $d.Deterministic | Should -BeTrue
        $d.VaryingFields | Should -BeNullOrEmpty
        $d.Cases[0].Groups.Count | Should -Be 1
        $d.Cases[0].Runs | Should -Be 6   # the warm-up run is a real execution too
    }

    It 'names exit_code, stderr and output files when those vary' {
        $d = Join-Path $Dir 'driftfields'
        New-Item -ItemType Directory -Force $d | Out-Null
        $spec = @{ runs = 4; warmup = 0; cases = @(
            @{ name = 'exit'; command_line = 'n=$(cat n 2>/dev/null || echo 0); echo $((n+1)) > n; exit $((n % 2))'; cwd = $d }
            @{ name = 'stderr'; command_line = 'date +%N >&2'; cwd = $d }
            @{ name = 'file'; command_line = 'date +%N > out.txt; echo done'; cwd = $d; output_files = @('out.txt') }
        ) }
        $drift = Invoke-RequiemBench -Spec $spec | Measure-RequiemDrift
        ($drift.Cases | Where-Object Name -eq 'exit').VaryingFields | Should -Be @('exit_code')
        ($drift.Cases | Where-Object Name -eq 'stderr').VaryingFields | Should -Be @('stderr')
        ($drift.Cases | Where-Object Name -eq 'file').VaryingFields | Should -Be @('output_file:out.txt')
        $drift.VaryingFields | Should -Be @('exit_code', 'stderr', 'output_file:out.txt')
        (($drift.Cases | Where-Object Name -eq 'exit').Differences[0]) | ForEach-Object { "$($_.TextA)/$($_.TextB)" } | Should -BeIn @('0/1', '1/0')
    }

    It 'has a readable default view (drift pretty)' {
        $r = Invoke-RequiemBench -Spec @{ runs = 3; warmup = 0; cases = @(@{ name = 'clock'; command_line = 'date +%N' }, @{ name = 'echo'; command_line = 'echo same' }) }
        $text = Measure-RequiemDrift -Bench $r | Out-String -Width 200
        $text | Should -Match 'DRIFT in 1 of 2 case\(s\); varying: stdout'
        $text | Should -Match 'DRIFT\s+clock\s+\(3 runs, 3 distinct results\); varying: stdout'
        $text | Should -Match 'first difference in stdout, run 0 vs 1, byte \d+ \(line 1, col \d+\)'
        $text | Should -Match 'ok\s+echo\s+\(3 runs, 1 result'
    }

    It 'still groups runs when the CAS holding the outputs is not available' {
        $r = Invoke-RequiemBench -Command 'date +%N' -Runs 2 -Warmup 0
        $d = Measure-RequiemDrift -Bench $r -Cas (Join-Path $Dir 'no-such-cas') -WarningVariable w -WarningAction SilentlyContinue
        $d.Deterministic | Should -BeFalse
        $d.VaryingFields | Should -Be @('stdout')
        $d.Cases[0].Differences[0].ContentAvailable | Should -BeFalse
        "$w" | Should -Match 'cannot be opened'
    }

    It 'round-trips the drift report through JSON' {
        $p = Join-Path $Dir 'drift.json'
        $d = Invoke-RequiemBench -Command 'date +%N' -Runs 2 -Warmup 0 | Measure-RequiemDrift -OutFile $p
        $j = Get-Content $p -Raw | ConvertFrom-Json
        $j.deterministic | Should -BeFalse
        $j.varying_fields | Should -Be @('stdout')
        $md1 = Join-Path $Dir 'd1.md'; $md2 = Join-Path $Dir 'd2.md'
        Write-RequiemCiReport $d -Provider GitHub -SummaryPath $md1 6>$null
        Write-RequiemCiReport $p -Provider GitHub -SummaryPath $md2 6>$null
        Get-Content $md2 -Raw | Should -Be (Get-Content $md1 -Raw)
    }
}

Describe 'CI reporting (opt-in)' {
    It 'writes GitHub annotations and a step summary when GITHUB_ACTIONS=true, keeping the output stream clean' {
        $summary = Join-Path $Dir 'gh-summary.md'
        $b = Join-Path $RegDir 'baseline.json'; $c = Join-Path $RegDir 'current.json'
        $out = Invoke-FreshPwsh -Environment @{ GITHUB_ACTIONS = 'true'; GITHUB_STEP_SUMMARY = $summary; TF_BUILD = $null; REQUIEM_CAS = $CasDir } -Script @"
Import-Module '$ModulePath'
`$objects = @(Compare-RequiemBench -Baseline '$b' -Current '$c' -CiSummary)
"count=`$(`$objects.Count) regressed=`$(`$objects[0].Regressed)"
"@
        $text = $out -join "`n"
        $text | Should -Match '(?m)^::error title=Performance regression%3A work::wall_ms .*regressed'
        $text | Should -Match 'count=1 regressed=True'
        $md = Get-Content $summary -Raw
        $md | Should -Match '### :x: Performance regression'
        $md | Should -Match '\| work \| wall_ms \| [\d.]+ \| [\d.]+ \| \+[\d.]+% \|'
        # A bench report summarises as a table of cases.
        $reportMd = Join-Path $Dir 'report.md'
        Write-RequiemCiReport -InputObject $Cur50 -Provider GitHub -SummaryPath $reportMd 6>$null
        Get-Content $reportMd -Raw | Should -Match '\| work \| 10 \| [\d.]+ \| [\d.]+ ± [\d.]+ \|'
    }

    It 'writes Azure DevOps logging commands when TF_BUILD=True' {
        $out = Invoke-FreshPwsh -Environment @{ TF_BUILD = 'True'; GITHUB_ACTIONS = $null; AGENT_TEMPDIRECTORY = $Dir; REQUIEM_CAS = $CasDir } -Script @"
Import-Module '$ModulePath'
`$d = Invoke-RequiemBench -Command 'date +%N' -Runs 2 -Warmup 0 | Measure-RequiemDrift
`$n = @(`$d | Write-RequiemCiReport).Count
"objects=`$n"
"@
        $text = $out -join "`n"
        $text | Should -Match '(?m)^##vso\[task\.logissue type=error\]Non-deterministic: date \+%AZP25N: 2 distinct results over 2 runs%3B varying stdout'
        $text | Should -Match '(?m)^##vso\[task\.uploadsummary\].*requiem-summary-.*\.md$'
        $text | Should -Match 'objects=0'
    }

    It 'writes nothing outside CI' {
        $out = Invoke-FreshPwsh -Environment @{ TF_BUILD = $null; GITHUB_ACTIONS = $null; REQUIEM_CAS = $CasDir } -Script @"
Import-Module '$ModulePath'
Compare-RequiemBench -Baseline '$(Join-Path $RegDir 'baseline.json')' -Current '$(Join-Path $RegDir 'current.json')' | Write-RequiemCiReport
'end'
"@
        ($out -join "`n").Trim() | Should -Be 'end'
    }
}

Describe 'Requiem.Pester helpers' {
    It 'Should-BeDeterministic passes for echo and fails naming stdout for a timestamp' {
        Should-BeDeterministic -Command 'echo same' -Runs 3
        Invoke-RequiemBench -Command 'echo same' -Runs 2 | Should-BeDeterministic
        $err = { Should-BeDeterministic -Command 'date +%N' -Runs 3 -Because 'output must be reproducible' } | Should -Throw -PassThru
        $err.Exception.Message | Should -Match "^Expected 'date \+%N' to be deterministic because output must be reproducible, but it drifted: case 'date \+%N': 3 distinct results in 3 runs, varying stdout; first difference: stdout"
    }

    It 'Should-NotRegress passes within the threshold and fails on the 50 ms regression' {
        $Base10 | Should-NotRegress -Baseline $Base10
        $err = { $Cur50 | Should-NotRegress -Baseline $Base10 } | Should -Throw -PassThru
        $err.Exception.Message | Should -Match "1 case\(s\) regressed: 'work' wall_ms"
        $cmp = Compare-RequiemBench -Baseline $Base10 -Current $Cur50
        { $cmp | Should-NotRegress } | Should -Throw
    }

    It 'Should-MatchReplay calls Invoke-RequiemReplay -Request -Result and reports its Differences (stand-in replay cmdlet)' {
        # The real Invoke-RequiemReplay is another engineer's cmdlet; a stand-in with the fixed interface
        # (-Request, -Result → Match, Differences) checks the helper's side of the contract in a fresh session.
        $out = Invoke-FreshPwsh -AllowFailure -Script @"
Import-Module '$PesterModule'
Import-Module '$HelperModule'
function global:Invoke-RequiemReplay { param(`$Request, `$Result)
    `$global:seen = "`$Request|`$Result"
    if (`$Result -eq 'same') { [pscustomobject]@{ Match = `$true; Differences = @() } }
    else { [pscustomobject]@{ Match = `$false; Differences = @([pscustomobject]@{ Field = 'stdout_digest'; Expected = 'aaa'; Actual = 'bbb' }) } }
}
'same' | Should-MatchReplay -Request 'req.json'
"passed `$global:seen"
try { 'other' | Should-MatchReplay -Request 'req.json' -Because 'replays must be exact' } catch { "failed `$(`$_.Exception.Message)" }
"@
        $text = $out -join "`n"
        $text | Should -Match 'passed req\.json\|same'
        $text | Should -Match "failed Expected the replay to match the recorded result because replays must be exact, but it differs: stdout_digest: expected 'aaa' but replay gave 'bbb'"
    }

    It 'Should-MatchReplay replays a recorded result' -Skip:(-not (Get-Command Invoke-RequiemReplay -ErrorAction Ignore)) {
        $req = Join-Path $Dir 'replay-request.json'
        @{ command = '/bin/sh'; argv = @('-c', 'echo replay'); workspace_root = $Dir } | ConvertTo-Json | Set-Content -LiteralPath $req
        $result = Invoke-RequiemExec -Request $req
        $result | Should-MatchReplay -Request $req
        $clock = Join-Path $Dir 'replay-clock.json'
        @{ command = '/bin/sh'; argv = @('-c', 'date +%N'); workspace_root = $Dir } | ConvertTo-Json | Set-Content -LiteralPath $clock
        $drifting = Invoke-RequiemExec -Request $clock
        { $drifting | Should-MatchReplay -Request $clock } | Should -Throw -ExpectedMessage '*Expected the replay to match the recorded result*'
    }
}
