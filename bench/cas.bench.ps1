#requires -Version 7.4
<#
.SYNOPSIS
    CAS benchmarks against the real alternatives, in one run:
      1. 10,000 x 4 KiB files: Get-ChildItem | Add-RequiemCasObject  vs  git hash-object -w --stdin-paths (fresh repo),
         also git with durable loose objects (core.fsync=loose-object, core.fsyncMethod=batch).   target <= 0.5x git
      2. a large compressible file: Add-RequiemCasObject -Compress Zstd  vs  zstd -3                target <= 1.5x zstd
      3. Test-RequiemCas -All throughput  vs  hashing the same bytes (b3sum over the object files; Get-RequiemDigest)
    Each figure is the median of -Runs runs, each into a fresh store / repository. Writes cas.json to -OutDirectory.
#>
param(
    [string] $ModulePath = (Join-Path $PSScriptRoot '../out/Requiem/Requiem.psd1'),
    [string] $OutDirectory = (Join-Path $PSScriptRoot '../out/bench'),
    [int] $FileCount = 10000,
    [int] $FileSize = 4096,
    [int] $LargeMiB = 256,
    [int] $Runs = 3
)

$ErrorActionPreference = 'Stop'
Import-Module $ModulePath
New-Item -ItemType Directory -Force -Path $OutDirectory | Out-Null
$work = Join-Path ([IO.Path]::GetTempPath()) "requiem-cas-bench-$PID"
New-Item -ItemType Directory -Force -Path $work | Out-Null

function Measure-Median {
    param([scriptblock] $Setup, [scriptblock] $Body, [int] $Count = $Runs)
    $times = foreach ($i in 1..$Count) {
        if ($Setup) { & $Setup }
        [GC]::Collect()
        $sw = [Diagnostics.Stopwatch]::StartNew()
        & $Body | Out-Null
        $sw.Stop()
        $sw.Elapsed.TotalSeconds
    }
    $sorted = @($times | Sort-Object)
    [pscustomobject]@{ Median = $sorted[[int][Math]::Floor(($sorted.Count - 1) / 2)]; Min = $sorted[0]; Runs = $sorted }
}

function Invoke-Bash([string] $Command) {
    & bash -c $Command
    if ($LASTEXITCODE -ne 0) { throw "bash -c '$Command' failed with $LASTEXITCODE" }
}

$missing = @('git', 'zstd', 'b3sum') | Where-Object { -not (Get-Command $_ -ErrorAction Ignore) }
if ($missing) { Write-Warning "Missing tools (their comparisons are skipped): $($missing -join ', ')" }
$results = [ordered]@{
    machine = [ordered]@{ os = [Runtime.InteropServices.RuntimeInformation]::OSDescription; cores = [Environment]::ProcessorCount; load = (Get-Content /proc/loadavg -ErrorAction Ignore) }
    runs    = $Runs
}

try {
    # ---------------------------------------------------------------- 1. many small files
    Write-Host "== 1. $FileCount x $FileSize-byte files ==" -ForegroundColor Cyan
    $src = Join-Path $work 'small'
    New-Item -ItemType Directory $src | Out-Null
    $rng = [Random]::new(1)
    $buffer = [byte[]]::new($FileSize)
    for ($i = 0; $i -lt $FileCount; $i++) {
        $rng.NextBytes($buffer)
        [IO.File]::WriteAllBytes((Join-Path $src ('f{0:d5}.bin' -f $i)), $buffer)
    }
    $list = Join-Path $work 'paths.txt'
    [IO.File]::WriteAllLines($list, [string[]](Get-ChildItem $src -File).FullName)

    $store = Join-Path $work 'store'
    $repo = Join-Path $work 'repo'
    $hasGit = [bool](Get-Command git -ErrorAction Ignore)
    # Rounds alternate Requiem, git and durable git, so that load from other processes hits all three alike.
    $times = @{ ours = @(); git = @(); gitDurable = @() }
    foreach ($round in 1..$Runs) {
        Remove-Item -Recurse -Force $store -ErrorAction Ignore
        [GC]::Collect()
        $sw = [Diagnostics.Stopwatch]::StartNew()
        Get-ChildItem $src -File | Add-RequiemCasObject -Cas $store | Out-Null
        $times.ours += $sw.Elapsed.TotalSeconds
        if ($hasGit) {
            Remove-Item -Recurse -Force $repo -ErrorAction Ignore; & git init -q $repo
            $sw.Restart(); Invoke-Bash "cd '$repo' && git hash-object -w --stdin-paths < '$list' > /dev/null"; $times.git += $sw.Elapsed.TotalSeconds
            Remove-Item -Recurse -Force $repo -ErrorAction Ignore; & git init -q $repo
            $sw.Restart(); Invoke-Bash "cd '$repo' && git -c core.fsync=loose-object -c core.fsyncMethod=batch hash-object -w --stdin-paths < '$list' > /dev/null"; $times.gitDurable += $sw.Elapsed.TotalSeconds
        }
    }
    function Get-Median([double[]] $v) { $s = @($v | Sort-Object); $s[[int][Math]::Floor(($s.Count - 1) / 2)] }
    $ours = [pscustomobject]@{ Median = (Get-Median $times.ours); Runs = $times.ours }
    $check = Get-RequiemCasStatistic -Cas $store -Top 0
    if ($check.ObjectCount -ne $FileCount) { throw "expected $FileCount objects, found $($check.ObjectCount)" }
    $dedup = Measure-Median -Body { Get-ChildItem $src -File | Add-RequiemCasObject -Cas $store }
    $small = [ordered]@{ files = $FileCount; file_size = $FileSize; requiem_seconds = $ours.Median; requiem_runs = $ours.Runs; requiem_dedup_seconds = $dedup.Median }
    "Add-RequiemCasObject (fresh store):    {0,8:N3} s  ({1:N0} objects/s)" -f $ours.Median, ($FileCount / $ours.Median) | Write-Host
    "Add-RequiemCasObject (all dedup):      {0,8:N3} s" -f $dedup.Median | Write-Host
    if ($hasGit) {
        $git = [pscustomobject]@{ Median = (Get-Median $times.git); Runs = $times.git }
        $gitDurable = [pscustomobject]@{ Median = (Get-Median $times.gitDurable); Runs = $times.gitDurable }
        $small.git_seconds = $git.Median
        $small.git_runs = $git.Runs
        $small.git_durable_seconds = $gitDurable.Median
        $small.git_durable_runs = $gitDurable.Runs
        $small.ratio_vs_git = [Math]::Round($ours.Median / $git.Median, 3)
        $small.ratio_vs_git_best_runs = [Math]::Round(($times.ours | Measure-Object -Minimum).Minimum / ($times.git | Measure-Object -Minimum).Minimum, 3)
        $small.ratio_vs_git_durable = [Math]::Round($ours.Median / $gitDurable.Median, 3)
        $small.target_ratio = 0.5
        $small.target_met = $small.ratio_vs_git -le 0.5
        "git hash-object -w --stdin-paths:      {0,8:N3} s" -f $git.Median | Write-Host
        "git ... (fsync loose objects, batch):  {0,8:N3} s" -f $gitDurable.Median | Write-Host
        "ratio Requiem / git: {0:N2}x median, {1:N2}x best runs (target <= 0.5x: {2}); vs durable git: {3:N2}x" -f $small.ratio_vs_git, $small.ratio_vs_git_best_runs, ($small.target_met ? 'met' : 'MISSED'), $small.ratio_vs_git_durable | Write-Host
    }
    $results.small_files = $small

    # ---------------------------------------------------------------- 3a. verify throughput on the small-file store
    Write-Host "`n== 3. Test-RequiemCas -All throughput ==" -ForegroundColor Cyan
    $bytes = [double]$FileCount * $FileSize
    $verify = Measure-Median -Body { $r = Test-RequiemCas -All -Cas $store; if (-not $r.Valid) { throw 'store invalid' } }
    $objectFiles = Join-Path $work 'objects.txt'
    [IO.File]::WriteAllLines($objectFiles, [string[]](Get-ChildItem -Recurse -File (Join-Path $store 'objects')).FullName)
    $digest = Measure-Median -Body { Get-RequiemDigest -LiteralPath ([IO.File]::ReadAllLines($objectFiles)) -Domain Cas }
    $verifyFig = [ordered]@{
        objects = $FileCount; bytes = $bytes
        test_all_seconds = $verify.Median; test_all_mib_per_s = [Math]::Round($bytes / 1MB / $verify.Median, 1)
        get_requiem_digest_seconds = $digest.Median; get_requiem_digest_mib_per_s = [Math]::Round($bytes / 1MB / $digest.Median, 1)
    }
    if (Get-Command b3sum -ErrorAction Ignore) {
        $b3 = Measure-Median -Body { Invoke-Bash "xargs -a '$objectFiles' b3sum --no-names > /dev/null" }
        $verifyFig.b3sum_seconds = $b3.Median
        $verifyFig.b3sum_mib_per_s = [Math]::Round($bytes / 1MB / $b3.Median, 1)
        $verifyFig.ratio_vs_b3sum = [Math]::Round($verify.Median / $b3.Median, 3)
    }
    "Test-RequiemCas -All ({0} objects):    {1,8:N3} s  ({2} MiB/s)" -f $FileCount, $verify.Median, $verifyFig.test_all_mib_per_s | Write-Host
    "Get-RequiemDigest over the same files: {0,8:N3} s  ({1} MiB/s)" -f $digest.Median, $verifyFig.get_requiem_digest_mib_per_s | Write-Host
    if ($verifyFig.Contains('b3sum_seconds')) { "b3sum over the same files:             {0,8:N3} s  ({1} MiB/s)" -f $verifyFig.b3sum_seconds, $verifyFig.b3sum_mib_per_s | Write-Host }
    $results.verify_small = $verifyFig
    Remove-Item -Recurse -Force $src, $repo -ErrorAction Ignore

    # ---------------------------------------------------------------- 2. large compressible file
    Write-Host "`n== 2. $LargeMiB MiB compressible file, zstd level 3 ==" -ForegroundColor Cyan
    $large = Join-Path $work 'large.txt'
    $words = 'alpha', 'beta', 'gamma', 'delta', 'epsilon', 'requiem', 'content', 'addressable', 'storage', 'zstd', 'blake3', 'pipeline', 'verify', 'replay', '2026-11-25T22:00:00Z', 'INFO', 'WARN', 'exit_code=0'
    $sb = [Text.StringBuilder]::new()
    $r2 = [Random]::new(3)
    while ($sb.Length -lt 8MB) { [void]$sb.Append($words[$r2.Next($words.Count)]).Append(($r2.Next(8) -eq 0) ? "`n" : ' ') }
    $chunk = [Text.Encoding]::ASCII.GetBytes($sb.ToString())
    $fs = [IO.File]::Create($large)
    try {
        $written = 0L
        while ($written -lt $LargeMiB * 1MB) {
            for ($k = 0; $k -lt 16; $k++) { $chunk[$k] = [byte](97 + $r2.Next(26)) }   # vary each chunk a little
            $n = [Math]::Min($chunk.Length, $LargeMiB * 1MB - $written)
            $fs.Write($chunk, 0, $n); $written += $n
        }
    }
    finally { $fs.Dispose() }
    $largeBytes = (Get-Item $large).Length
    $zstore = Join-Path $work 'zstore'
    $oursZ = Measure-Median -Setup { Remove-Item -Recurse -Force $zstore -ErrorAction Ignore } -Body {
        Add-RequiemCasObject -LiteralPath $large -Compress Zstd -CompressionLevel 3 -Cas $zstore
    }
    $obj = Get-RequiemCasObject -Cas $zstore | Select-Object -First 1
    $largeFig = [ordered]@{
        bytes = $largeBytes; requiem_seconds = $oursZ.Median; requiem_runs = $oursZ.Runs
        requiem_mib_per_s = [Math]::Round($largeBytes / 1MB / $oursZ.Median, 1); requiem_stored_bytes = $obj.StoredSize
    }
    "Add-RequiemCasObject -Compress Zstd:   {0,8:N3} s  ({1} MiB/s, {2:N1}% of original)" -f $oursZ.Median, $largeFig.requiem_mib_per_s, (100.0 * $obj.StoredSize / $largeBytes) | Write-Host
    if (Get-Command zstd -ErrorAction Ignore) {
        $zout = Join-Path $work 'large.txt.zst'
        $z = Measure-Median -Setup { Remove-Item -Force $zout -ErrorAction Ignore } -Body { Invoke-Bash "zstd -3 -q -f '$large' -o '$zout'" }
        $largeFig.zstd_seconds = $z.Median
        $largeFig.zstd_runs = $z.Runs
        $largeFig.zstd_stored_bytes = (Get-Item $zout).Length
        $largeFig.ratio_vs_zstd = [Math]::Round($oursZ.Median / $z.Median, 3)
        $largeFig.target_ratio = 1.5
        $largeFig.target_met = $largeFig.ratio_vs_zstd -le 1.5
        # The object must be a standard frame: zstd decodes it to the original bytes.
        Invoke-Bash "zstd -q -d -c '$($obj.ObjectPath)' | cmp -s - '$large'"
        "zstd -3:                               {0,8:N3} s  ({1:N1}% of original)" -f $z.Median, (100.0 * $largeFig.zstd_stored_bytes / $largeBytes) | Write-Host
        "ratio Requiem / zstd: {0:N2}x (target <= 1.5x: {1})" -f $largeFig.ratio_vs_zstd, ($largeFig.target_met ? 'met' : 'MISSED') | Write-Host

        $vz = Measure-Median -Body { $r = Test-RequiemCas -All -Cas $zstore; if (-not $r.Valid) { throw 'invalid' } }
        $largeFig.test_all_seconds = $vz.Median
        $largeFig.test_all_mib_per_s = [Math]::Round($largeBytes / 1MB / $vz.Median, 1)
        if (Get-Command b3sum -ErrorAction Ignore) {
            $dz = Measure-Median -Body { Invoke-Bash "zstd -q -d -c '$($obj.ObjectPath)' | b3sum --no-names > /dev/null" }
            $largeFig.zstd_d_b3sum_seconds = $dz.Median
            $largeFig.ratio_verify_vs_zstd_d_b3sum = [Math]::Round($vz.Median / $dz.Median, 3)
            "Test-RequiemCas -All (zstd object):    {0,8:N3} s  ({1} MiB/s); zstd -d | b3sum: {2:N3} s" -f $vz.Median, $largeFig.test_all_mib_per_s, $dz.Median | Write-Host
        }
    }
    $results.large_file = $largeFig
}
finally {
    Remove-Item -Recurse -Force $work -ErrorAction Ignore
}

$json = Join-Path $OutDirectory 'cas.json'
$results | ConvertTo-Json -Depth 6 | Set-Content -LiteralPath $json
Write-Host "`nWrote $json"
