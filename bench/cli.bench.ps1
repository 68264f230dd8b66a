#requires -Version 7.4
<#
.SYNOPSIS
    The price of a process start: `requiem digest file` and `requiem cas put` (a new pwsh that imports the module for
    each call) against the same cmdlets called in this warm session, on the same small file, interleaved.
.PARAMETER ModulePath
    The built module manifest (build.ps1 -Task Bench passes out/Requiem/Requiem.psd1).
.PARAMETER OutDirectory
    Where cli.json goes.
.PARAMETER Runs
    Measured calls per variant (after one warm-up call each).
#>
param(
    [string] $ModulePath = (Join-Path $PSScriptRoot '../out/Requiem/Requiem.psd1'),
    [string] $OutDirectory = (Join-Path $PSScriptRoot '../out/bench'),
    [int] $Runs = 15
)
$ErrorActionPreference = 'Stop'
Import-Module $ModulePath
New-Item -ItemType Directory -Force -Path $OutDirectory | Out-Null
$requiem = Join-Path (Split-Path $ModulePath) 'bin/requiem'
if ($IsWindows) { $requiem = Join-Path (Split-Path $ModulePath) 'bin/requiem.cmd' }
if (-not $env:REQUIEM_PWSH) { $env:REQUIEM_PWSH = Join-Path $PSHOME ($IsWindows ? 'pwsh.exe' : 'pwsh') }
$work = Join-Path ([IO.Path]::GetTempPath()) "requiem-bench-cli-$PID"
New-Item -ItemType Directory -Force -Path $work | Out-Null
$cas = Join-Path $work 'cas'
$file = Join-Path $work 'input.bin'
$bytes = [byte[]]::new(64KB); [Random]::new(7).NextBytes($bytes); [IO.File]::WriteAllBytes($file, $bytes)
$expected = (Get-RequiemDigest -LiteralPath $file).Hash

function Get-Median([double[]] $v) { $s = $v | Sort-Object; $n = $s.Count; if ($n % 2) { $s[($n - 1) / 2] } else { ($s[$n / 2 - 1] + $s[$n / 2]) / 2 } }
function Measure-Ms([scriptblock] $Action) { $sw = [Diagnostics.Stopwatch]::StartNew(); & $Action; $sw.Stop(); $sw.Elapsed.TotalMilliseconds }

$variants = [ordered]@{
    'requiem digest file'  = { $out = & $requiem digest file --file $file; if ($LASTEXITCODE -ne 0 -or ($out | ConvertFrom-Json).hash -ne $expected) { throw "requiem digest file failed: $out" } }
    'Get-RequiemDigest'    = { if ((Get-RequiemDigest -LiteralPath $file).Hash -ne $expected) { throw 'Get-RequiemDigest gave another digest' } }
    'requiem cas put'      = { $out = & $requiem cas put --in $file --cas $cas; if ($LASTEXITCODE -ne 0) { throw "requiem cas put failed: $out" } }
    'Add-RequiemCasObject' = { Add-RequiemCasObject -LiteralPath $file -Cas $cas | Out-Null }
    'pwsh -c exit (start only)' = { & $env:REQUIEM_PWSH -NoProfile -NonInteractive -Command 'exit 0'; if ($LASTEXITCODE -ne 0) { throw 'pwsh failed' } }
}
$times = @{}
foreach ($k in $variants.Keys) { $times[$k] = [Collections.Generic.List[double]]::new(); $null = Measure-Ms $variants[$k] }   # warm-up
try {
    for ($i = 0; $i -lt $Runs; $i++) {
        foreach ($k in $variants.Keys) { $times[$k].Add((Measure-Ms $variants[$k])) }
    }
}
finally { }

# CPU time of a whole `requiem` call (the process tree, from wait4): far less sensitive to a busy machine than wall time.
$q = { param($a) "'" + ($a -replace "'", "'\''") + "'" }
$cpuSpec = @{ name = 'requiem-cpu'; warmup = 1; runs = [math]::Max(3, [math]::Min($Runs, 8)); cases = @(
    @{ name = 'requiem digest file'; command_line = "$(& $q $requiem) digest file --file $(& $q $file) >/dev/null" }
    @{ name = 'requiem cas put'; command_line = "$(& $q $requiem) cas put --in $(& $q $file) --cas $(& $q $cas) >/dev/null" }
    @{ name = 'pwsh -c exit (start only)'; command_line = "$(& $q $env:REQUIEM_PWSH) -NoProfile -NonInteractive -Command 'exit 0'" }
) }
$cpu = Invoke-RequiemBench -Spec $cpuSpec -NoCalibration -Cas (Join-Path $work 'bench-cas')
Remove-Item -Recurse -Force $work -ErrorAction Ignore
$cpuRows = foreach ($c in $cpu.Cases) {
    $user = $c.Statistics.UserMs.Median; $system = $c.Statistics.SystemMs.Median
    [pscustomobject]@{ Variant = $c.Name; CpuMs = [math]::Round($user + $system, 1); UserMs = [math]::Round($user, 1); SystemMs = [math]::Round($system, 1); WallMs = [math]::Round($c.Statistics.WallMs.Median, 1); FailedRuns = $c.Statistics.FailedRuns }
}

$load = if ($IsLinux) { [double]((Get-Content /proc/loadavg -Raw).Split(' ')[0]) } else { $null }
$rows = foreach ($k in $variants.Keys) {
    $v = $times[$k].ToArray()
    [pscustomobject]@{ Variant = $k; Runs = $v.Count; MedianMs = [math]::Round((Get-Median $v), 2); MinMs = [math]::Round(($v | Measure-Object -Minimum).Minimum, 2) }
}
$byName = @{}; foreach ($r in $rows) { $byName[$r.Variant] = $r }
$summary = [ordered]@{
    cores = [Environment]::ProcessorCount
    load_average = $load
    file_bytes = $bytes.Length
    runs = $Runs
    variants = @($rows | ForEach-Object { [ordered]@{ variant = $_.Variant; runs = $_.Runs; median_ms = $_.MedianMs; min_ms = $_.MinMs } })
    cpu_ms_per_call = @($cpuRows | ForEach-Object { [ordered]@{ variant = $_.Variant; cpu_ms = $_.CpuMs; user_ms = $_.UserMs; system_ms = $_.SystemMs; wall_ms = $_.WallMs; failed_runs = $_.FailedRuns } })
    process_start_price_ms = [ordered]@{
        digest_file = [math]::Round($byName['requiem digest file'].MedianMs - $byName['Get-RequiemDigest'].MedianMs, 1)
        cas_put = [math]::Round($byName['requiem cas put'].MedianMs - $byName['Add-RequiemCasObject'].MedianMs, 1)
    }
}
$summary | ConvertTo-Json -Depth 5 | Set-Content -LiteralPath (Join-Path $OutDirectory 'cli.json')
$rows | Format-Table -AutoSize | Out-String | Write-Host
$cpuRows | Format-Table -AutoSize | Out-String | Write-Host
Write-Host ("Price of a process start (median requiem call - median warm cmdlet): digest file {0} ms, cas put {1} ms; load {2} on {3} cores" -f
    $summary.process_start_price_ms.digest_file, $summary.process_start_price_ms.cas_put, $load, $summary.cores)
