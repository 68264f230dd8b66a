#requires -Version 7.4
<#
.SYNOPSIS
    Bench harness overhead and accuracy: Invoke-RequiemBench against hyperfine on the same commands, in the same run,
    interleaved round by round; plus the false-alarm rate of the regression gate comparing a case with itself.
.PARAMETER ModulePath
    The built module manifest (build.ps1 -Task Bench passes out/Requiem/Requiem.psd1).
.PARAMETER OutDirectory
    Where bench.json goes.
.PARAMETER Rounds
    Interleaved rounds (hyperfine, then Requiem, then hyperfine ...); each round measures -Runs runs per tool.
#>
param(
    [string] $ModulePath = (Join-Path $PSScriptRoot '../out/Requiem/Requiem.psd1'),
    [string] $OutDirectory = (Join-Path $PSScriptRoot '../out/bench'),
    [int] $Rounds = 3,
    [int] $Runs = 200,
    [int] $Pairs = 30
)
$ErrorActionPreference = 'Stop'
Import-Module $ModulePath
New-Item -ItemType Directory -Force -Path $OutDirectory | Out-Null
$work = Join-Path ([IO.Path]::GetTempPath()) "requiem-bench-$PID"
New-Item -ItemType Directory -Force -Path $work | Out-Null
$env:REQUIEM_CAS = Join-Path $work 'cas'
$hyperfine = Get-Command hyperfine -ErrorAction Ignore

function Get-Median([double[]] $v) { $s = $v | Sort-Object; $n = $s.Count; if ($n % 2) { $s[($n - 1) / 2] } else { ($s[$n / 2 - 1] + $s[$n / 2]) / 2 } }

$cases = @(
    @{ Name = '/bin/true'; Argv = @('/bin/true') }
    @{ Name = 'sleep 0.01'; Argv = @('sleep', '0.01') }
)
$results = @()
try {
    foreach ($case in $cases) {
        $ours = @(); $theirs = @()
        for ($r = 0; $r -lt $Rounds; $r++) {
            if ($hyperfine) {
                $hf = Join-Path $work 'hf.json'
                $sw = [Diagnostics.Stopwatch]::StartNew()
                & hyperfine -N --style none --warmup 10 --runs $Runs --export-json $hf -- ($case.Argv -join ' ') | Out-Null
                $hfTotal = $sw.Elapsed.TotalMilliseconds
                $h = (Get-Content $hf -Raw | ConvertFrom-Json).results[0]
                $theirs += [pscustomobject]@{
                    median_ms = $h.median * 1000; mean_ms = $h.mean * 1000; min_ms = $h.min * 1000
                    user_ms = $h.user * 1000; system_ms = $h.system * 1000; elapsed_per_run_ms = $hfTotal / ($Runs + 10)
                }
            }
            $spec = @{ warmup = 10; runs = $Runs; cases = @(@{ name = $case.Name; command = $case.Argv[0]; argv = @($case.Argv | Select-Object -Skip 1) }) }
            $sw = [Diagnostics.Stopwatch]::StartNew()
            $rep = Invoke-RequiemBench -Spec $spec -NoCalibration -ProgressAction SilentlyContinue
            $total = $sw.Elapsed.TotalMilliseconds
            $st = $rep.Cases[0].Statistics
            $ours += [pscustomobject]@{
                median_ms = $st.WallMs.Median; mean_ms = $st.WallMs.Mean; min_ms = $st.WallMs.Min
                user_ms = $st.UserMs.Mean; system_ms = $st.SystemMs.Mean; elapsed_per_run_ms = $total / ($Runs + 10)
            }
        }
        $summary = [ordered]@{ case = $case.Name; runs_per_round = $Runs; rounds = $Rounds; method = $rep.Measurement }
        foreach ($k in 'median_ms', 'mean_ms', 'min_ms', 'user_ms', 'system_ms', 'elapsed_per_run_ms') {
            $summary["requiem_$k"] = [math]::Round((Get-Median ($ours | ForEach-Object $k)), 4)
            if ($hyperfine) {
                $summary["hyperfine_$k"] = [math]::Round((Get-Median ($theirs | ForEach-Object $k)), 4)
                $summary["ratio_$k"] = if ($summary["hyperfine_$k"] -gt 0) { [math]::Round($summary["requiem_$k"] / $summary["hyperfine_$k"], 3) } else { $null }
            }
        }
        $results += [pscustomobject]$summary
        Write-Host ("{0,-12} median wall: requiem {1:0.000} ms, hyperfine {2:0.000} ms (ratio {3}); harness time per run: requiem {4:0.000} ms, hyperfine {5:0.000} ms (ratio {6})" -f `
            $case.Name, $summary.requiem_median_ms, $summary.hyperfine_median_ms, $summary.ratio_median_ms,
            $summary.requiem_elapsed_per_run_ms, $summary.hyperfine_elapsed_per_run_ms, $summary.ratio_elapsed_per_run_ms)
    }
    if (-not $hyperfine) { Write-Warning 'hyperfine is not installed: Requiem figures only (apt-get install hyperfine).' }

    # False alarms: the same case benchmarked twice, compared, many times (the gate with and without -Recheck).
    $d = Join-Path $work 'fa'
    New-Item -ItemType Directory -Force $d | Out-Null
    Set-Content (Join-Path $d 'work.sh') 'i=0; while [ $i -lt 3000 ]; do i=$((i+1)); done; sleep 0.01'
    $spec = @{ warmup = 1; runs = 10; cases = @(@{ name = 'work'; command = 'sh'; argv = @('./work.sh'); cwd = $d }) }
    $naive = 0; $gate = 0; $recheck = 0; $loads = @()
    Push-Location $d
    try {
        for ($i = 0; $i -lt $Pairs; $i++) {
            $a = Invoke-RequiemBench -Spec $spec -ProgressAction SilentlyContinue
            $b = Invoke-RequiemBench -Spec $spec -ProgressAction SilentlyContinue
            $loads += $a.Machine.LoadAverage
            $c = Compare-RequiemBench -Baseline $a -Current $b
            if ((($c.Cases[0].Metrics | Where-Object Metric -eq 'wall_ms').ChangePercent) -gt 10) { $naive++ }
            if ($c.Regressed) {
                $gate++
                if ((Compare-RequiemBench -Baseline $a -Current $b -Recheck 2 -ProgressAction SilentlyContinue).Regressed) { $recheck++ }
            }
        }
    }
    finally { Pop-Location }
    $falseAlarms = [ordered]@{
        pairs = $Pairs; runs_per_side = 10; threshold_percent = 10
        load_average_1m = [math]::Round(($loads | Measure-Object -Average).Average, 2)
        median_only = $naive; gate = $gate; gate_recheck_2 = $recheck
    }
    Write-Host ("False alarms over {0} same-vs-same comparisons (load {1}): median > 10% alone {2}, gate {3}, gate -Recheck 2 {4}" -f `
        $Pairs, $falseAlarms.load_average_1m, $naive, $gate, $recheck)

    [ordered]@{
        machine = (Invoke-RequiemBench -Command 'true' -Runs 1 -Warmup 0 -NoCalibration).Machine
        hyperfine = if ($hyperfine) { (& hyperfine --version) } else { $null }
        overhead = $results
        false_alarms = $falseAlarms
    } | ConvertTo-Json -Depth 5 | Set-Content (Join-Path $OutDirectory 'bench.json')
    Write-Host "Wrote $(Join-Path $OutDirectory 'bench.json')"
}
finally {
    Remove-Item -Recurse -Force $work -ErrorAction Ignore
}
