#requires -Version 7.4
<#
.SYNOPSIS
    Digest benchmarks against the real alternatives, in one run on one machine:
    a large file vs b3sum and Get-FileHash -Algorithm SHA256; many small files through the pipeline vs Get-FileHash;
    and the cost of Import-Module on a bare pwsh start.
#>
param(
    [Parameter(Mandatory)] [string] $ModulePath,
    [Parameter(Mandatory)] [string] $OutDirectory,
    [long] $LargeFileBytes = 1GB,
    [int] $SmallFiles = 10000,
    [int] $Repeat = 5
)

$ErrorActionPreference = 'Stop'
$ModulePath = (Resolve-Path $ModulePath).Path
New-Item -ItemType Directory -Force -Path $OutDirectory | Out-Null   # also when run alone, outside build.ps1
Import-Module $ModulePath
$work = Join-Path ([IO.Path]::GetTempPath()) "requiem-bench-digest-$PID"
New-Item -ItemType Directory -Force -Path $work | Out-Null

function Measure-Best {
    # Best (minimum) wall time of $Repeat runs, in seconds: the least noisy estimator on a shared machine.
    param([scriptblock] $Script, [int] $Times = $Repeat)
    $best = [double]::MaxValue
    for ($i = 0; $i -lt $Times; $i++) {
        $sw = [Diagnostics.Stopwatch]::StartNew()
        & $Script | Out-Null
        $sw.Stop()
        $best = [Math]::Min($best, $sw.Elapsed.TotalSeconds)
    }
    $best
}

function Measure-Interleaved {
    # Alternates A and B for $Rounds rounds (so drifting machine load hits both alike); returns best and median of each.
    param([scriptblock] $A, [scriptblock] $B, [int] $Rounds = 7)
    $ta = [Collections.Generic.List[double]]::new(); $tb = [Collections.Generic.List[double]]::new()
    for ($i = 0; $i -lt $Rounds; $i++) {
        $sw = [Diagnostics.Stopwatch]::StartNew(); & $A | Out-Null; $ta.Add($sw.Elapsed.TotalSeconds)
        $sw = [Diagnostics.Stopwatch]::StartNew(); & $B | Out-Null; $tb.Add($sw.Elapsed.TotalSeconds)
    }
    $median = { param($l) $s = @($l | Sort-Object); $s[[int][Math]::Floor($s.Count / 2)] }
    [pscustomobject]@{ BestA = ($ta | Measure-Object -Minimum).Minimum; MedianA = & $median $ta; BestB = ($tb | Measure-Object -Minimum).Minimum; MedianB = & $median $tb }
}

function Get-PeakRssMiB {
    # Peak resident memory of a fresh pwsh that imports the module and hashes the file (flat-memory check).
    param([string] $File)
    $hash = if ($File) { "`$null = Get-RequiemDigest -LiteralPath '$File'" } else { "`$null = Get-RequiemDigest -InputObject x" }
    $script = "Import-Module '$ModulePath'; $hash; (Get-Content /proc/self/status | Select-String '^VmHWM').Line"
    $line = & (Join-Path $PSHOME 'pwsh') -NoProfile -NonInteractive -Command $script
    [math]::Round(([long](($line -split '\s+')[1])) / 1024, 1)
}

try {
    $results = [ordered]@{ machine = [ordered]@{ cores = [Environment]::ProcessorCount; os = [Runtime.InteropServices.RuntimeInformation]::OSDescription; runtime = [Runtime.InteropServices.RuntimeInformation]::FrameworkDescription } }

    # ---- large file ----
    $big = Join-Path $work 'large.bin'
    $fs = [IO.File]::Create($big)
    $chunk = [byte[]]::new(8MB); [Random]::new(1).NextBytes($chunk)
    for ($w = 0L; $w -lt $LargeFileBytes; $w += $chunk.Length) { $fs.Write($chunk, 0, [Math]::Min($chunk.Length, $LargeFileBytes - $w)) }
    $fs.Dispose()
    $null = Get-FileHash -LiteralPath $big -Algorithm SHA256   # warm the page cache for everyone
    $null = Get-RequiemDigest -LiteralPath $big                 # and the JIT
    $hasB3sum = [bool](Get-Command b3sum -ErrorAction Ignore)
    $timeTool = if (Test-Path /usr/bin/time) { '/usr/bin/time' } else { $null }

    function Measure-InProcess {
        # Wall and CPU time (this process, all threads) of one run of $Script.
        param([scriptblock] $Script)
        $p = [Diagnostics.Process]::GetCurrentProcess(); $cpu0 = $p.TotalProcessorTime
        $sw = [Diagnostics.Stopwatch]::StartNew(); & $Script | Out-Null; $sw.Stop()
        $p.Refresh()
        [pscustomobject]@{ Wall = $sw.Elapsed.TotalSeconds; Cpu = ($p.TotalProcessorTime - $cpu0).TotalSeconds; RssMiB = $null }
    }
    function Measure-External {
        # Wall, CPU (user + system) and peak RSS of one run of a command, through GNU time when present.
        param([string[]] $Command)
        $sw = [Diagnostics.Stopwatch]::StartNew()
        if ($timeTool) {
            $report = Join-Path $work 'time.txt'
            & $timeTool -f '%U %S %M' -o $report @Command | Out-Null
            $sw.Stop()
            $u, $s, $m = (Get-Content $report -Tail 1) -split ' '
            return [pscustomobject]@{ Wall = $sw.Elapsed.TotalSeconds; Cpu = [double]$u + [double]$s; RssMiB = [math]::Round([double]$m / 1024, 1) }
        }
        & $Command[0] @($Command | Select-Object -Skip 1) | Out-Null
        $sw.Stop()
        [pscustomobject]@{ Wall = $sw.Elapsed.TotalSeconds; Cpu = $null; RssMiB = $null }
    }

    # Interleaved rounds (drifting load on a shared machine hits every contender alike); medians and bests reported.
    $contenders = [ordered]@{
        requiem = { Measure-InProcess { Get-RequiemDigest -LiteralPath $big } }
        requiem_one_thread = { Measure-InProcess { Get-RequiemDigest -LiteralPath $big -ThrottleLimit 1 } }
    }
    if ($hasB3sum) {
        $contenders.b3sum = { Measure-External @((Get-Command b3sum).Source, '--no-names', $big) }
        $contenders.b3sum_one_thread = { Measure-External @((Get-Command b3sum).Source, '--no-names', '--num-threads', '1', $big) }
    }
    $runs = @{}; foreach ($k in $contenders.Keys) { $runs[$k] = [Collections.Generic.List[object]]::new() }
    $roundLoads = [Collections.Generic.List[string]]::new()   # the 1-minute load average as each round starts
    for ($round = 0; $round -lt $Repeat; $round++) {
        $roundLoads.Add($(if (Test-Path /proc/loadavg) { (Get-Content /proc/loadavg).Split(' ')[0] } else { '' }))
        foreach ($k in $contenders.Keys) { $runs[$k].Add((& $contenders[$k])) }
    }
    $sha = Measure-InProcess { Get-FileHash -LiteralPath $big -Algorithm SHA256 }
    $median = { param($values) $v = @($values | Where-Object { $null -ne $_ } | Sort-Object); if ($v.Count) { $v[[int][Math]::Floor($v.Count / 2)] } else { $null } }
    $summary = [ordered]@{}
    foreach ($k in $contenders.Keys) {
        $summary[$k] = [ordered]@{
            median_s = [math]::Round((& $median $runs[$k].Wall), 3)
            best_s = [math]::Round(($runs[$k].Wall | Measure-Object -Minimum).Minimum, 3)
            median_cpu_s = if ($null -ne (& $median $runs[$k].Cpu)) { [math]::Round((& $median $runs[$k].Cpu), 3) } else { $null }
            peak_rss_mib = if ($null -ne (& $median $runs[$k].RssMiB)) { & $median $runs[$k].RssMiB } else { $null }
            rounds_s = @($runs[$k].Wall | ForEach-Object { [math]::Round($_, 3) })
            rounds_cpu_s = @($runs[$k].Cpu | ForEach-Object { if ($null -ne $_) { [math]::Round($_, 3) } })
        }
    }
    # pwsh's own threads (tiered compilation of its code, timers) use CPU while nothing runs; the in-process CPU figures
    # above include it. Measured here over the requiem median's wall time, for reading those figures.
    $idle = Measure-InProcess { Start-Sleep -Milliseconds ([int]($summary.requiem.median_s * 1000)) }
    $same = if ($hasB3sum) { (Get-RequiemDigest -LiteralPath $big).Hash -eq (b3sum --no-names $big).Trim() } else { $null }
    $rss = if ($IsLinux) { Get-PeakRssMiB $big } else { $null }
    $rssIdle = if ($IsLinux) { Get-PeakRssMiB $null } else { $null }
    $mib = $LargeFileBytes / 1MB
    $req = $summary.requiem.median_s
    $results.large_file = [ordered]@{
        bytes = $LargeFileBytes
        rounds = $Repeat
        vector_width = if ([Runtime.Intrinsics.Vector512]::IsHardwareAccelerated) { '512-bit (16 lanes)' } elseif ([Runtime.Intrinsics.Vector256]::IsHardwareAccelerated) { '256-bit (8 lanes)' } else { '128-bit (4 lanes) or scalar' }   # the same runtime checks the engine makes
        load_average_at_start = if (Test-Path /proc/loadavg) { (Get-Content /proc/loadavg) } else { $null }
        load_average_per_round = @($roundLoads)
        pwsh_idle_cpu_s_over_median_wall = [math]::Round($idle.Cpu, 3)
        contenders = $summary
        requiem_mib_s = [math]::Round($mib / $req)
        get_filehash_sha256_s = [math]::Round($sha.Wall, 3)
        get_filehash_sha256_cpu_s = [math]::Round($sha.Cpu, 3)
        ratio_median_vs_b3sum = $hasB3sum ? [math]::Round($req / $summary.b3sum.median_s, 2) : $null
        ratio_best_vs_b3sum = $hasB3sum ? [math]::Round($summary.requiem.best_s / $summary.b3sum.best_s, 2) : $null
        ratio_one_thread_vs_b3sum_one_thread = $hasB3sum ? [math]::Round($summary.requiem_one_thread.median_s / $summary.b3sum_one_thread.median_s, 2) : $null
        ratio_vs_get_filehash = [math]::Round($req / $sha.Wall, 2)
        digest_equals_b3sum = $same
        peak_rss_mib_of_hashing_pwsh = $rss
        peak_rss_mib_of_idle_pwsh_with_module = $rssIdle
    }
    Remove-Item -LiteralPath $big

    # ---- many small files through the pipeline ----
    $small = Join-Path $work 'small'
    New-Item -ItemType Directory -Path $small | Out-Null
    $payload = [byte[]]::new(4096)
    $rng = [Random]::new(2)
    for ($i = 0; $i -lt $SmallFiles; $i++) { $rng.NextBytes($payload); [IO.File]::WriteAllBytes((Join-Path $small "f$i.bin"), $payload) }
    $files = Get-ChildItem -LiteralPath $small -File
    $null = $files | Get-RequiemDigest; $null = $files | Get-FileHash -Algorithm SHA256   # warm-up (JIT, page cache)
    $pair = Measure-Interleaved -A { $files | Get-RequiemDigest } -B { $files | Get-FileHash -Algorithm SHA256 }
    $b3sumSmall = if (Get-Command b3sum -ErrorAction Ignore) { Measure-Best { Push-Location $small; try { b3sum -- *.bin } finally { Pop-Location } } -Times 1 } else { $null }
    $results.small_files = [ordered]@{
        files = $SmallFiles; bytes_each = 4096; rounds = 7
        requiem_pipeline_best_s = [math]::Round($pair.BestA, 3)
        requiem_pipeline_median_s = [math]::Round($pair.MedianA, 3)
        get_filehash_pipeline_best_s = [math]::Round($pair.BestB, 3)
        get_filehash_pipeline_median_s = [math]::Round($pair.MedianB, 3)
        b3sum_one_process_s = $b3sumSmall ? [math]::Round($b3sumSmall, 3) : $null
        ratio_best_vs_get_filehash = [math]::Round($pair.BestA / $pair.BestB, 2)
        ratio_median_vs_get_filehash = [math]::Round($pair.MedianA / $pair.MedianB, 2)
        requiem_files_per_s = [math]::Round($SmallFiles / $pair.MedianA)
    }

    # ---- Import-Module cost on a bare pwsh start ----
    $pwsh = Join-Path $PSHOME 'pwsh'
    $bare = Measure-Best { & $pwsh -NoProfile -NonInteractive -Command '$null' } -Times 5
    $withImport = Measure-Best { & $pwsh -NoProfile -NonInteractive -Command "Import-Module '$ModulePath'" } -Times 5
    $withFirstHash = Measure-Best { & $pwsh -NoProfile -NonInteractive -Command "Import-Module '$ModulePath'; `$null = Get-RequiemDigest -InputObject x" } -Times 5
    $results.import = [ordered]@{
        bare_pwsh_s = [math]::Round($bare, 3)
        pwsh_with_import_s = [math]::Round($withImport, 3)
        import_added_ms = [math]::Round(($withImport - $bare) * 1000)
        import_plus_first_digest_added_ms = [math]::Round(($withFirstHash - $bare) * 1000)
    }

    $json = $results | ConvertTo-Json -Depth 5
    Set-Content -LiteralPath (Join-Path $OutDirectory 'digest.json') -Value $json
    $json | Out-Host
}
finally {
    Remove-Item -Recurse -Force $work -ErrorAction Ignore
}
