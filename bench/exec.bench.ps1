#requires -Version 7.4
<#
.SYNOPSIS
    Execution benchmarks, each against the real alternative in the same run:
    1. a fully sandboxed /bin/true (PID + network namespace, rlimits, process limit, CAS recording) vs `& /bin/true` in
       pwsh: the same request again (already recorded), a new request each time, a minimal sandbox, and the external
       tool chain (REQUIEM_LAUNCHER=none) instead of requiem-launch;
    2. N short requests with -Scheduler Turbo vs -Scheduler Repro (same results, same order).
.PARAMETER Iterations
    Calls per side for the overhead comparison.
.PARAMETER Requests
    Requests for the scheduler comparison.
.PARAMETER WorkRoot
    Where the stores and the workspace go (default: the temp folder; /dev/shm takes the disk out of the figures).
#>
param(
    [string] $ModulePath = (Join-Path $PSScriptRoot '../out/Requiem/Requiem.psd1'),
    [string] $WorkRoot = [IO.Path]::GetTempPath(),
    [string] $OutDirectory = (Join-Path $PSScriptRoot '../out/bench'),
    [int] $Iterations = 300,
    [int] $Requests = 1000
)
$ErrorActionPreference = 'Stop'
Import-Module $ModulePath
New-Item -ItemType Directory -Force -Path $OutDirectory | Out-Null
$work = Join-Path $WorkRoot "requiem-exec-bench-$PID"
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
    # warm-up (JIT, probe, CAS layout), for both launchers
    $env:REQUIEM_LAUNCHER = 'none'
    1..10 | ForEach-Object { $null = Invoke-RequiemExec -Request $sandboxed -WarningAction SilentlyContinue }
    $chainHealth = Get-RequiemHealth
    Remove-Item Env:REQUIEM_LAUNCHER
    # pwsh's tiered JIT is still promoting methods after hundreds of calls (BENCH.md 1g): 200 calls before anything is timed.
    1..180 | ForEach-Object { $null = Invoke-RequiemExec -Request $sandboxed -WarningAction SilentlyContinue }
    1..20 | ForEach-Object { & $true_; $null = Invoke-RequiemExec -Request $sandboxed -WarningAction SilentlyContinue }

    $minimal = @{ command = $true_; argv = @(); workspace_root = $ws; timeout_ms = 5000; max_output_bytes = 4096 }
    function Median($xs) { $s = @($xs | Sort-Object); $s[[int][Math]::Floor($s.Count / 2)] }
    # Each variant is timed interleaved with its own `& /bin/true` baseline, so that machine noise hits both alike
    # and one variant's disk work (new requests) does not slow the others. Both sides are statements written into the
    # loop, as a user's script writes them, not a scriptblock invoked per call (0.1-0.9 ms of pwsh's, charged to the
    # sandboxed side only before 2026-12-02).
    function Measure-Pair([string] $Statement) {
        $n = [Collections.Generic.List[double]]::new(); $s = [Collections.Generic.List[double]]::new()
        $sw = [Diagnostics.Stopwatch]::new()
        . ([scriptblock]::Create(@"
for (`$i = 0; `$i -lt `$Iterations; `$i++) {
    `$sw.Restart(); & `$true_; `$sw.Stop(); `$n.Add(`$sw.Elapsed.TotalMilliseconds)
    `$sw.Restart(); $Statement; `$sw.Stop(); `$s.Add(`$sw.Elapsed.TotalMilliseconds)
}
"@))
        [pscustomobject]@{ Native = (Median $n); Sandboxed = (Median $s); Added = (Median $s) - (Median $n) }
    }
    $r = Invoke-RequiemExec -Request $sandboxed -WarningAction SilentlyContinue
    if ($r.ExitCode -ne 0) { throw "sandboxed /bin/true exited $($r.ExitCode)" }
    # the same request again: its result is already recorded, so only the run and the digests are new work
    $same = Measure-Pair '$null = Invoke-RequiemExec -Request $sandboxed -WarningAction SilentlyContinue'
    # a new request every time (argv differs): a new request blob, manifest and ref are written durably
    $distinct = Measure-Pair '$d = $sandboxed.Clone(); $d.argv = @("run-$i-$PID"); $null = Invoke-RequiemExec -Request $d -WarningAction SilentlyContinue'
    $mini = Measure-Pair '$null = Invoke-RequiemExec -Request $minimal'
    $env:REQUIEM_LAUNCHER = 'none'
    try { $chain = Measure-Pair '$null = Invoke-RequiemExec -Request $sandboxed -WarningAction SilentlyContinue' }
    finally { Remove-Item Env:REQUIEM_LAUNCHER }
    $nativeMed = $same.Native; $sandMed = $same.Sandboxed; $added = $same.Added; $miniMed = $mini.Sandboxed
    $fs = (& df -T $env:REQUIEM_CAS 2>$null | Select-Object -Last 1) -split '\s+' | Select-Object -Index 1
    "CAS on {0} ({1}); isolator {2}" -f $env:REQUIEM_CAS, $fs, $health.Isolator | Write-Host
    "fully sandboxed, same request (already recorded): & /bin/true {0:N2} ms, sandboxed {1:N2} ms, added {2:N2} ms (target <= 2 ms)" -f $same.Native, $same.Sandboxed, $same.Added | Write-Host
    "fully sandboxed, a new request each time:          & /bin/true {0:N2} ms, sandboxed {1:N2} ms, added {2:N2} ms" -f $distinct.Native, $distinct.Sandboxed, $distinct.Added | Write-Host
    "default policy (no limits):                        & /bin/true {0:N2} ms, sandboxed {1:N2} ms, added {2:N2} ms" -f $mini.Native, $mini.Sandboxed, $mini.Added | Write-Host
    "fully sandboxed with the tool chain ({0}):    & /bin/true {1:N2} ms, sandboxed {2:N2} ms, added {3:N2} ms" -f $chainHealth.Isolator, $chain.Native, $chain.Sandboxed, $chain.Added | Write-Host
    "enforced: {0}" -f ($r.Sandbox.Enforced -join ',') | Write-Host

    # Scheduler: N distinct short requests, Repro vs Turbo.
    $sw = [Diagnostics.Stopwatch]::new()
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
        overhead = [ordered]@{ iterations = $Iterations; cas_filesystem = $fs; native_median_ms = $nativeMed; sandboxed_median_ms = $sandMed; added_ms = $added; target_added_ms = 2
            enforced = @($r.Sandbox.Enforced); distinct_median_ms = $distinct.Sandboxed; distinct_added_ms = $distinct.Added
            minimal_median_ms = $miniMed; minimal_added_ms = $mini.Added
            toolchain_isolator = $chainHealth.Isolator; toolchain_median_ms = $chain.Sandboxed; toolchain_added_ms = $chain.Added }
        scheduler = [ordered]@{ requests = $Requests; repro_s = $reproS; turbo_s = $turboS; speedup = $ratio; target_speedup = 1.8; same_results_in_order = $same
            throttle = [Environment]::ProcessorCount * 2 }
    } | ConvertTo-Json -Depth 5 | Set-Content -LiteralPath (Join-Path $OutDirectory 'exec.json')
}
finally {
    Remove-Item -Recurse -Force $work -ErrorAction Ignore
}
