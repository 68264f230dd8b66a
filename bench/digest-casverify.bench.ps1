#requires -Version 7.4
<#
.SYNOPSIS
    Store verification against b3sum over the same object files, in one run on one machine (runs with digest.bench.ps1
    under `build.ps1 -Task Bench -Bench digest`):
      1. Test-RequiemCas -All on a store of 10,000 x 4 KiB objects  vs  b3sum over those object files (one process)
      2. Test-RequiemCas -All on a store holding one 1 GiB object      vs  b3sum on that object file (its default threads)
    Target (issue 15): <= 1.5x b3sum. Rounds alternate the contenders; medians and bests of wall time, median CPU time
    (user + system, every thread) reported. Page cache warm.
#>
param(
    [Parameter(Mandatory)] [string] $ModulePath,
    [Parameter(Mandatory)] [string] $OutDirectory,
    [int] $SmallObjects = 10000,
    [long] $LargeObjectBytes = 1GB,
    [int] $Repeat = 5
)

$ErrorActionPreference = 'Stop'
$ModulePath = (Resolve-Path $ModulePath).Path
New-Item -ItemType Directory -Force -Path $OutDirectory | Out-Null   # also when run alone, outside build.ps1
Import-Module $ModulePath
$work = Join-Path ([IO.Path]::GetTempPath()) "requiem-bench-casverify-$PID"
New-Item -ItemType Directory -Force -Path $work | Out-Null
$b3sum = (Get-Command b3sum -ErrorAction Ignore).Source
if (-not $b3sum) { throw 'b3sum is needed for this benchmark (apt-get install b3sum).' }
if (-not (Test-Path /usr/bin/time)) { throw 'GNU time (/usr/bin/time) is needed for the CPU figures of b3sum.' }

function Measure-InProcess([scriptblock] $Script) {
    $p = [Diagnostics.Process]::GetCurrentProcess(); $cpu0 = $p.TotalProcessorTime
    $sw = [Diagnostics.Stopwatch]::StartNew(); & $Script | Out-Null; $sw.Stop()
    $p.Refresh()
    [pscustomobject]@{ Wall = $sw.Elapsed.TotalSeconds; Cpu = ($p.TotalProcessorTime - $cpu0).TotalSeconds }
}

function Measure-Bash([string] $Command) {
    # Wall and CPU (user + system of the shell and everything it waited for) through GNU time.
    $report = Join-Path $work 'time.txt'
    $sw = [Diagnostics.Stopwatch]::StartNew()
    & /usr/bin/time -f '%U %S' -o $report bash -c $Command | Out-Null
    $sw.Stop()
    if ($LASTEXITCODE -ne 0) { throw "failed: $Command" }
    $u, $s = (Get-Content $report -Tail 1) -split ' '
    [pscustomobject]@{ Wall = $sw.Elapsed.TotalSeconds; Cpu = [double]$u + [double]$s }
}

function Compare-Rounds([scriptblock] $Requiem, [scriptblock] $Other) {
    $null = & $Requiem; $null = & $Other   # warm-up: JIT, page cache
    $a = [Collections.Generic.List[object]]::new(); $b = [Collections.Generic.List[object]]::new()
    $loads = [Collections.Generic.List[string]]::new()   # the 1-minute load average as each round starts
    for ($i = 0; $i -lt $Repeat; $i++) {
        $loads.Add($(if (Test-Path /proc/loadavg) { (Get-Content /proc/loadavg).Split(' ')[0] } else { '' }))
        $a.Add((& $Requiem)); $b.Add((& $Other))
    }
    $median = { param($v) $s = @($v | Sort-Object); $s[[int][Math]::Floor($s.Count / 2)] }
    $fig = [ordered]@{
        requiem_median_s = [math]::Round((& $median $a.Wall), 3)
        requiem_best_s = [math]::Round(($a.Wall | Measure-Object -Minimum).Minimum, 3)
        requiem_median_cpu_s = [math]::Round((& $median $a.Cpu), 3)
        b3sum_median_s = [math]::Round((& $median $b.Wall), 3)
        b3sum_best_s = [math]::Round(($b.Wall | Measure-Object -Minimum).Minimum, 3)
        b3sum_median_cpu_s = [math]::Round((& $median $b.Cpu), 3)
        requiem_rounds_s = @($a.Wall | ForEach-Object { [math]::Round($_, 3) })
        b3sum_rounds_s = @($b.Wall | ForEach-Object { [math]::Round($_, 3) })
        requiem_rounds_cpu_s = @($a.Cpu | ForEach-Object { [math]::Round($_, 3) })
        b3sum_rounds_cpu_s = @($b.Cpu | ForEach-Object { [math]::Round($_, 3) })
        load_average_per_round = @($loads)
    }
    $fig.ratio_median = [math]::Round($fig.requiem_median_s / $fig.b3sum_median_s, 2)
    $fig.ratio_best = [math]::Round($fig.requiem_best_s / $fig.b3sum_best_s, 2)
    $fig.ratio_cpu = if ($fig.b3sum_median_cpu_s -gt 0) { [math]::Round($fig.requiem_median_cpu_s / $fig.b3sum_median_cpu_s, 2) } else { $null }   # GNU time counts in 10 ms steps
    $fig.target_met = $fig.ratio_median -le 1.5
    $fig
}

try {
    $results = [ordered]@{
        machine = [ordered]@{
            cores = [Environment]::ProcessorCount
            vector_width = if ([Runtime.Intrinsics.Vector512]::IsHardwareAccelerated) { '512-bit (16 lanes)' } elseif ([Runtime.Intrinsics.Vector256]::IsHardwareAccelerated) { '256-bit (8 lanes)' } else { '128-bit (4 lanes) or scalar' }
            load_average_at_start = if (Test-Path /proc/loadavg) { Get-Content /proc/loadavg } else { $null }
        }
    }

    # ---- 1. many small objects ----
    $src = Join-Path $work 'small'; New-Item -ItemType Directory -Path $src | Out-Null
    $payload = [byte[]]::new(4096); $rng = [Random]::new(15)
    for ($i = 0; $i -lt $SmallObjects; $i++) { $rng.NextBytes($payload); [IO.File]::WriteAllBytes((Join-Path $src "f$i.bin"), $payload) }
    $smallStore = Join-Path $work 'store-small'
    $objects = Get-ChildItem -LiteralPath $src -File | Add-RequiemCasObject -Cas $smallStore
    $list = Join-Path $work 'small-objects.txt'
    Set-Content -LiteralPath $list -Value ($objects.ObjectPath)
    Remove-Item -Recurse -Force $src
    $results.small_objects = [ordered]@{ objects = $SmallObjects; bytes_each = 4096 } + (Compare-Rounds `
        { Measure-InProcess { $r = Test-RequiemCas -All -Cas $smallStore; if (-not $r.Valid -or $r.Checked -ne $SmallObjects) { throw 'store invalid' } } } `
        { Measure-Bash "xargs -a '$list' '$b3sum' --no-names > /dev/null" })
    Remove-Item -Recurse -Force $smallStore

    # ---- 2. one large object ----
    $big = Join-Path $work 'large.bin'
    $fs = [IO.File]::Create($big)
    $chunk = [byte[]]::new(8MB); [Random]::new(16).NextBytes($chunk)
    for ($w = 0L; $w -lt $LargeObjectBytes; $w += $chunk.Length) { $fs.Write($chunk, 0, [Math]::Min($chunk.Length, $LargeObjectBytes - $w)) }
    $fs.Dispose()
    $largeStore = Join-Path $work 'store-large'
    $object = Add-RequiemCasObject -LiteralPath $big -Cas $largeStore
    Remove-Item -LiteralPath $big
    $results.large_object = [ordered]@{ bytes = $LargeObjectBytes } + (Compare-Rounds `
        { Measure-InProcess { $r = Test-RequiemCas -All -Cas $largeStore; if (-not $r.Valid -or $r.BytesChecked -ne $LargeObjectBytes) { throw 'store invalid' } } } `
        { Measure-Bash "'$b3sum' --no-names '$($object.ObjectPath)' > /dev/null" })

    $json = $results | ConvertTo-Json -Depth 5
    Set-Content -LiteralPath (Join-Path $OutDirectory 'digest-casverify.json') -Value $json
    $json | Out-Host
}
finally {
    Remove-Item -Recurse -Force $work -ErrorAction Ignore
}
