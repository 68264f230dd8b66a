#requires -Version 7.4
<#
.SYNOPSIS
    The action cache, each side against the real alternative in the same run:
    1. a hermetic request that takes about 2 s (sleep 2, then writes an output file from a declared input): running it
       (Invoke-RequiemExec -Cache Off) vs answering it from the cache (-Cache Read: nothing runs, the output file is
       deleted before each call and restored from the CAS, verified);
    2. a cache hit of a hermetic `/bin/true` request with one input and one output vs `& /bin/true` in pwsh,
       interleaved: the overhead of a hit.
.PARAMETER Runs
    Real runs of the 2 s command (each takes 2 s).
.PARAMETER Iterations
    Cache hits per side, each interleaved with its own baseline.
#>
param(
    [string] $ModulePath = (Join-Path $PSScriptRoot '../out/Requiem/Requiem.psd1'),
    [string] $WorkRoot = [IO.Path]::GetTempPath(),
    [string] $OutDirectory = (Join-Path $PSScriptRoot '../out/bench'),
    [int] $Runs = 3,
    [int] $Iterations = 200
)
$ErrorActionPreference = 'Stop'
Import-Module $ModulePath
New-Item -ItemType Directory -Force -Path $OutDirectory | Out-Null
$work = Join-Path $WorkRoot "requiem-actioncache-bench-$PID"
$ws = Join-Path $work 'ws'
New-Item -ItemType Directory -Force -Path $ws | Out-Null
$ws = (Resolve-Path $ws).ProviderPath
$env:REQUIEM_CAS = Join-Path $work 'cas'
try {
    $health = Get-RequiemHealth
    if ($health.SandboxCapabilities.Enforced -notcontains 'filesystem_isolation' -or $health.SandboxCapabilities.Enforced -notcontains 'network_isolation') {
        throw "hermetic runs with the network denied are not enforced here (isolator: $($health.Isolator)), so nothing is cacheable"
    }
    Set-Content -LiteralPath (Join-Path $ws 'in.txt') -Value ('x' * 4096) -NoNewline
    $policy = @{ filesystem = 'hermetic'; deny_network = $true }
    $slow = @{ command = '/bin/sh'; argv = @('-c', 'sleep 2; tr x y < in.txt > slow.out'); workspace_root = $ws
        inputs = @('in.txt'); outputs = @('slow.out'); policy = $policy; timeout_ms = 30000 }
    $true_ = '/bin/true'
    $fast = @{ command = $true_; argv = @(); workspace_root = $ws; inputs = @('in.txt'); outputs = @('fast.out'); policy = $policy }
    Set-Content -LiteralPath (Join-Path $ws 'fast.out') -Value 'restored on every hit' -NoNewline

    function Median($xs) { $s = @($xs | Sort-Object); $s[[int][Math]::Floor($s.Count / 2)] }
    $sw = [Diagnostics.Stopwatch]::new()

    # 1. The 2 s command: run vs hit.
    $recorded = Invoke-RequiemExec -Request $slow -Cache ReadWrite
    if ($recorded.CacheKey -and -not (Get-RequiemCacheEntry -Key $recorded.CacheKey)) { throw 'the 2 s run was not cached' }
    $runMs = foreach ($i in 1..$Runs) {
        $sw.Restart(); $r = Invoke-RequiemExec -Request $slow -Cache Off; $sw.Stop()
        if ($r.ExitCode -ne 0) { throw "the 2 s run failed: exit $($r.ExitCode)" }
        $sw.Elapsed.TotalMilliseconds
    }
    $expected = [IO.File]::ReadAllBytes((Join-Path $ws 'slow.out'))
    $hitMs = foreach ($i in 1..([Math]::Max(20, [int]($Iterations / 4)))) {
        Remove-Item -LiteralPath (Join-Path $ws 'slow.out')
        $sw.Restart(); $h = Invoke-RequiemExec -Request $slow -Cache Read; $sw.Stop()
        if (-not $h.CacheHit) { throw 'expected a cache hit' }
        $sw.Elapsed.TotalMilliseconds
    }
    if (-not [Linq.Enumerable]::SequenceEqual([byte[]][IO.File]::ReadAllBytes((Join-Path $ws 'slow.out')), [byte[]]$expected)) { throw 'the restored output differs' }
    $slowRun = Median $runMs
    $slowHit = Median $hitMs

    # 2. Hit overhead vs & /bin/true.
    $null = Invoke-RequiemExec -Request $fast -Cache ReadWrite
    1..20 | ForEach-Object { & $true_; $null = Invoke-RequiemExec -Request $fast -Cache Read }
    $native = [Collections.Generic.List[double]]::new(); $hits = [Collections.Generic.List[double]]::new()
    for ($i = 0; $i -lt $Iterations; $i++) {
        $sw.Restart(); & $true_; $sw.Stop(); $native.Add($sw.Elapsed.TotalMilliseconds)
        $sw.Restart(); $h = Invoke-RequiemExec -Request $fast -Cache Read; $sw.Stop(); $hits.Add($sw.Elapsed.TotalMilliseconds)
        if (-not $h.CacheHit) { throw 'expected a cache hit' }
    }
    $nativeMedian = Median $native
    $hitMedian = Median $hits

    "2 s hermetic command: run {0:N0} ms (median of {1}), cache hit {2:N2} ms (median of {3}, output restored and verified): {4:N0}x faster" -f $slowRun, $Runs, $slowHit, @($hitMs).Count, ($slowRun / $slowHit) | Write-Host
    "cache hit of /bin/true (1 input, 1 output): & /bin/true {0:N2} ms, hit {1:N2} ms, added {2:N2} ms (median of {3})" -f $nativeMedian, $hitMedian, ($hitMedian - $nativeMedian), $Iterations | Write-Host

    [ordered]@{
        benchmark = 'actioncache'
        machine = @{ cores = [Environment]::ProcessorCount; os = [Runtime.InteropServices.RuntimeInformation]::OSDescription; load = (Get-Content /proc/loadavg -ErrorAction Ignore) }
        slow_command = [ordered]@{ run_median_ms = $slowRun; runs = $Runs; hit_median_ms = $slowHit; hits = @($hitMs).Count; speedup = $slowRun / $slowHit }
        hit_overhead = [ordered]@{ native_median_ms = $nativeMedian; hit_median_ms = $hitMedian; added_ms = $hitMedian - $nativeMedian; iterations = $Iterations }
    } | ConvertTo-Json -Depth 5 | Set-Content -LiteralPath (Join-Path $OutDirectory 'actioncache.json')
}
finally {
    Remove-Item -Recurse -Force $work -ErrorAction Ignore
}
