#requires -Version 7.4
<#
.SYNOPSIS
    Execution benchmarks, each against the real alternative in the same run:
    1. a fully sandboxed /bin/true (PID + network namespace, rlimits, process limit, CAS recording) vs `& /bin/true` in pwsh;
    2. N short requests with -Scheduler Turbo vs -Scheduler Repro (same results, same order).
.PARAMETER Iterations
    Calls per side for the overhead comparison.
.PARAMETER Requests
    Requests for the scheduler comparison.
#>
param(
    [string] $ModulePath = (Join-Path $PSScriptRoot '../out/Requiem/Requiem.psd1'),
    [string] $OutDirectory = (Join-Path $PSScriptRoot '../out/bench'),
    [int] $Iterations = 300,
    [int] $Requests = 1000
)
$ErrorActionPreference = 'Stop'
Import-Module $ModulePath
New-Item -ItemType Directory -Force -Path $OutDirectory | Out-Null
$work = Join-Path ([IO.Path]::GetTempPath()) "requiem-exec-bench-$PID"
$ws = Join-Path $work 'ws'
New-Item -ItemType Directory -Force -Path $ws | Out-Null
$env:REQUIEM_CAS = Join-Path $work 'cas'
try {
    $health = Get-RequiemHealth
    $true_ = (Get-Command true -CommandType Application | Select-Object -First 1).Source
    $sandboxed = @{
        command = $true_; argv = @(); workspace_root = $ws; timeout_ms = 5000; max_output_bytes = 4096
        policy = @{ deny_network = $true; max_memory_bytes = 1GB; max_cpu_seconds = 10; max_open_files = 256; max_processes = 64 }
    }
    # warm-up (JIT, probe, CAS layout)
    1..20 | ForEach-Object { & $true_; $null = Invoke-RequiemExec -Request $sandboxed -WarningAction SilentlyContinue }

    $minimal = @{ command = $true_; argv = @(); workspace_root = $ws; timeout_ms = 5000; max_output_bytes = 4096 }
    $native = [Collections.Generic.List[double]]::new()
    $sand = [Collections.Generic.List[double]]::new()
    $mini = [Collections.Generic.List[double]]::new()
    $sw = [Diagnostics.Stopwatch]::new()
    for ($i = 0; $i -lt $Iterations; $i++) {
        # interleaved so that machine noise hits both sides alike
        $sw.Restart(); & $true_; $sw.Stop(); $native.Add($sw.Elapsed.TotalMilliseconds)
        $sw.Restart(); $r = Invoke-RequiemExec -Request $sandboxed -WarningAction SilentlyContinue; $sw.Stop(); $sand.Add($sw.Elapsed.TotalMilliseconds)
        if ($r.ExitCode -ne 0) { throw "sandboxed /bin/true exited $($r.ExitCode)" }
        $sw.Restart(); $null = Invoke-RequiemExec -Request $minimal; $sw.Stop(); $mini.Add($sw.Elapsed.TotalMilliseconds)
    }
    function Median($xs) { $s = @($xs | Sort-Object); $s[[int][Math]::Floor($s.Count / 2)] }
    $nativeMed = Median $native; $sandMed = Median $sand
    $added = $sandMed - $nativeMed
    $miniMed = Median $mini
    "minimal sandbox (clean env, PID namespace, CAS recording; no limits, no network namespace): median {0:N2} ms, added {1:N2} ms" -f $miniMed, ($miniMed - $nativeMed) | Write-Host
    "overhead: & /bin/true median {0:N2} ms, sandboxed Invoke-RequiemExec median {1:N2} ms, added {2:N2} ms (target <= 2 ms) [enforced: {3}]" -f `
        $nativeMed, $sandMed, $added, ($r.Sandbox.Enforced -join ',') | Write-Host

    # Scheduler: N distinct short requests, Repro vs Turbo.
    $reqs = 1..$Requests | ForEach-Object { @{ command = '/bin/echo'; argv = @("request $_"); workspace_root = $ws; timeout_ms = 10000; max_output_bytes = 4096 } }
    $null = $reqs[0..9] | Invoke-RequiemExec -Scheduler Repro
    $sw.Restart(); $repro = $reqs | Invoke-RequiemExec -Scheduler Repro; $sw.Stop(); $reproS = $sw.Elapsed.TotalSeconds
    $env:REQUIEM_CAS = Join-Path $work 'cas2'   # a fresh store, so Turbo writes as much as Repro did
    $sw.Restart(); $turbo = $reqs | Invoke-RequiemExec -Scheduler Turbo -ThrottleLimit ([Environment]::ProcessorCount * 2); $sw.Stop(); $turboS = $sw.Elapsed.TotalSeconds
    $same = (Compare-Object $repro.ResultDigest $turbo.ResultDigest -SyncWindow 0).Count -eq 0
    $ratio = $reproS / $turboS
    "scheduler: {0} requests Repro {1:N2} s ({2:N1}/s), Turbo {3:N2} s ({4:N1}/s), speed-up {5:N2}x on {6} cores (target >= 1.8x); same results in order: {7}" -f `
        $Requests, $reproS, ($Requests / $reproS), $turboS, ($Requests / $turboS), $ratio, [Environment]::ProcessorCount, $same | Write-Host
    if (-not $same) { throw 'Turbo results differ from Repro results' }

    [ordered]@{
        benchmark = 'exec'
        machine = @{ cores = [Environment]::ProcessorCount; os = [Runtime.InteropServices.RuntimeInformation]::OSDescription; isolator = $health.Isolator }
        overhead = [ordered]@{ iterations = $Iterations; native_median_ms = $nativeMed; sandboxed_median_ms = $sandMed; added_ms = $added; target_added_ms = 2
            enforced = @($r.Sandbox.Enforced); minimal_median_ms = $miniMed; minimal_added_ms = $miniMed - $nativeMed; native_mean_ms = ($native | Measure-Object -Average).Average; sandboxed_mean_ms = ($sand | Measure-Object -Average).Average }
        scheduler = [ordered]@{ requests = $Requests; repro_s = $reproS; turbo_s = $turboS; speedup = $ratio; target_speedup = 1.8; same_results_in_order = $same
            throttle = [Environment]::ProcessorCount * 2 }
    } | ConvertTo-Json -Depth 5 | Set-Content -LiteralPath (Join-Path $OutDirectory 'exec.json')
}
finally {
    Remove-Item -Recurse -Force $work -ErrorAction Ignore
}
