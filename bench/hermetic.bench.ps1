#requires -Version 7.4
<#
.SYNOPSIS
    Hermetic execution overhead, each against the real alternative in the same run:
    1. Invoke-RequiemExec of /bin/true with filesystem = hermetic, seccomp on, deny_network, limits and a process limit
       (the same request again, already recorded) vs `& /bin/true` in pwsh;
    2. the launcher alone (requiem-launch with the same mounts and filter the run used) vs bubblewrap with the
       equivalent binds (--unshare-pid --unshare-net --proc --dev --tmpfs /tmp, the default readonly_paths, the
       workspace), both started with `&` from pwsh: bwrap without a filter, and bwrap with the launcher's seccomp
       program (`requiem-launch --print-seccomp`), which bwrap takes only on a descriptor, so a sh opens it as fd 3
       and execs bwrap (one exec more, as the module's own bwrap launch does);
    3. Invoke-RequiemExec of the same request with the bubblewrap isolator (REQUIEM_LAUNCHER=none) vs `& /bin/true`;
    4. as root, the launcher alone joining a held view of the same layout (`requiem-launch --hold-view`, then
       `--join-view /proc/<this pid>/fd/<n> --view-inode <inode>`: what the module's hermetic runs do from a layout's
       second run on) vs `& /bin/true`.
.PARAMETER Iterations
    Calls per side, interleaved with their own `& /bin/true` baseline.
.PARAMETER Runs
    How many times the whole set is measured (each run prints its medians, 90th percentiles and the load average).
#>
param(
    [string] $ModulePath = (Join-Path $PSScriptRoot '../out/Requiem/Requiem.psd1'),
    [string] $WorkRoot = [IO.Path]::GetTempPath(),
    [string] $OutDirectory = (Join-Path $PSScriptRoot '../out/bench'),
    [int] $Iterations = 200,
    [int] $Runs = 3
)
$ErrorActionPreference = 'Stop'
Import-Module $ModulePath
New-Item -ItemType Directory -Force -Path $OutDirectory | Out-Null
$work = Join-Path $WorkRoot "requiem-hermetic-bench-$PID"
$ws = Join-Path $work 'ws'
New-Item -ItemType Directory -Force -Path $ws | Out-Null
$ws = (Resolve-Path $ws).ProviderPath
$env:REQUIEM_CAS = Join-Path $work 'cas'
try {
    $health = Get-RequiemHealth
    if ($health.Isolator -ne 'requiem-launch' -or $health.SandboxCapabilities.Enforced -notcontains 'filesystem_isolation') {
        throw "hermetic mode is not enforced here (isolator: $($health.Isolator)); build requiem-launch first"
    }
    $true_ = '/bin/true'
    $launcher = $health.Tools.requiem_launch
    $bwrap = (Get-Command bwrap -CommandType Application -ErrorAction Ignore | Select-Object -First 1).Source
    $request = @{
        command = $true_; argv = @(); workspace_root = $ws; timeout_ms = 5000; max_output_bytes = 4096
        policy = @{ filesystem = 'hermetic'; seccomp = $true; deny_network = $true; max_memory_bytes = 1GB; max_cpu_seconds = 10; max_open_files = 256; max_processes = 64 }
    }
    $r = Invoke-RequiemExec -Request $request
    if ($r.ExitCode -ne 0 -or $r.Sandbox.Filesystem -ne 'hermetic' -or -not $r.Sandbox.Seccomp) { throw "the hermetic run did not run as asked: exit $($r.ExitCode), $($r.Sandbox)" }

    # The launcher's own arguments for this run: the same layout FilesystemView builds (the engine's types live in their
    # own load context, so the list is spelled out here from the run's normalized policy).
    $readonly = @($r.Request.Policy.ReadonlyPaths | Where-Object { Test-Path -LiteralPath $_ })
    $fsArgs = @('--root', 'tmpfs', '--tmpfs', '/tmp', '--tmpfs', '/var/tmp', '--dev', '/dev')
    foreach ($p in $readonly) { $fsArgs += @('--ro-bind', $p) }
    $fsArgs += @('--bind', $ws)
    $launchArgs = @('--pidns', '--netns') + $fsArgs + @('--seccomp', '--', $true_)
    $bwrapArgs = @('--unshare-pid', '--unshare-net', '--die-with-parent', '--proc', '/proc', '--dev', '/dev', '--tmpfs', '/tmp', '--tmpfs', '/var/tmp', '--cap-drop', 'ALL')
    foreach ($p in $readonly) {
        $item = Get-Item -LiteralPath $p -Force
        if ($item.LinkType -eq 'SymbolicLink' -and $item.PSIsContainer) { $bwrapArgs += @('--symlink', $item.Target, $p) }
        else { $bwrapArgs += @('--ro-bind', $p, $p) }
    }
    $bwrapArgs += @('--bind', $ws, $ws, '--remount-ro', '/', '--chdir', $ws)
    $bwrapSeccompArgs = @('-c', 'exec 3< "$0"; exec "$@"', (Join-Path $work 'filter.bpf'), $bwrap) + $bwrapArgs + @('--seccomp', '3', '--', $true_)
    $bwrapArgs += @('--', $true_)
    $sh = (Get-Command sh -CommandType Application | Select-Object -First 1).Source
    # A held view of the same layout, as the module holds it (root only): the holder builds it, this process keeps the
    # namespace open by descriptor, and the holder exits when its stdin closes.
    $viewHandle = $null
    $joinArgs = $null
    if ((& id -u) -eq '0') {
        $psi = [Diagnostics.ProcessStartInfo]::new($launcher)
        $psi.UseShellExecute = $false; $psi.RedirectStandardInput = $true; $psi.RedirectStandardOutput = $true
        $psi.ArgumentList.Add('--hold-view'); foreach ($a in $fsArgs) { $psi.ArgumentList.Add($a) }
        $holder = [Diagnostics.Process]::Start($psi)
        while (($line = $holder.StandardOutput.ReadLine()) -and $line -ne 'ready') { }
        if ($line -eq 'ready') {
            $viewHandle = [IO.File]::OpenHandle("/proc/$($holder.Id)/ns/mnt")
            $viewPath = "/proc/$PID/fd/$($viewHandle.DangerousGetHandle().ToInt32())"
            $viewInode = [regex]::Match((Get-Item -LiteralPath $viewPath).LinkTarget, '\[(\d+)\]').Groups[1].Value
            $joinArgs = @('--join-view', $viewPath, '--view-inode', $viewInode) + $launchArgs
        }
        else { Write-Warning 'requiem-launch --hold-view did not report ready (a launcher before version 4?): no held-view row' }
        $holder.StandardInput.Close(); $holder.WaitForExit(); $holder.Dispose()
    }
    if ($bwrap) {
        & $sh -c "'$launcher' --print-seccomp > '$(Join-Path $work 'filter.bpf')'"
        if ($LASTEXITCODE -ne 0) { throw 'requiem-launch --print-seccomp failed' }
    }

    function Quantile($xs, [double] $q) { $s = @($xs | Sort-Object); $s[[int][Math]::Floor(($s.Count - 1) * $q)] }
    function Median($xs) { $s = @($xs | Sort-Object); $s[[int][Math]::Floor($s.Count / 2)] }
    # Both sides are timed as statements written into the loop, as a user's script writes them (`& /bin/true`, and
    # `$null = Invoke-RequiemExec ...` or `& $launcher ...`), not as a scriptblock invoked per call, which costs pwsh
    # 0.1-0.9 ms and was charged to the sandboxed side only before 2026-12-02 06:00 UTC.
    function Measure-Pair([string] $Statement) {
        $n = [Collections.Generic.List[double]]::new(); $s = [Collections.Generic.List[double]]::new()
        $sw = [Diagnostics.Stopwatch]::new()
        . ([scriptblock]::Create(@"
for (`$i = 0; `$i -lt `$Iterations; `$i++) {
    `$sw.Restart(); & `$true_; `$sw.Stop(); `$n.Add(`$sw.Elapsed.TotalMilliseconds)
    `$sw.Restart(); $Statement; `$sw.Stop(); `$s.Add(`$sw.Elapsed.TotalMilliseconds)
}
"@))
        [pscustomobject]@{ Native = (Median $n); Sandboxed = (Median $s); Added = (Median $s) - (Median $n); NativeP90 = (Quantile $n 0.9); SandboxedP90 = (Quantile $s 0.9) }
    }
    function Load { if (Test-Path /proc/loadavg) { [double]((Get-Content /proc/loadavg -Raw).Split(' ')[0]) } else { $null } }
    # warm-up: pwsh's tiered JIT is still promoting methods after hundreds of calls (BENCH.md 1g), and the target is about
    # an already-recorded request in a session that runs many, so the module gets 200 calls before anything is timed.
    1..180 | ForEach-Object { $null = Invoke-RequiemExec -Request $request }
    1..20 | ForEach-Object { & $true_; $null = Invoke-RequiemExec -Request $request; Push-Location $ws; & $launcher @launchArgs; if ($joinArgs) { & $launcher @joinArgs }; Pop-Location }
    if ($bwrap) {
        1..5 | ForEach-Object { & $bwrap @bwrapArgs; & $sh @bwrapSeccompArgs }
        $env:REQUIEM_LAUNCHER = 'none'
        try {
            $rb = Invoke-RequiemExec -Request $request
            if ((Get-RequiemHealth).Isolator -ne 'bwrap' -or $rb.Sandbox.Filesystem -ne 'hermetic' -or -not $rb.Sandbox.Seccomp) { throw "the bwrap run did not run as asked: $($rb.Sandbox)" }
            1..20 | ForEach-Object { $null = Invoke-RequiemExec -Request $request }
        }
        finally { Remove-Item Env:REQUIEM_LAUNCHER }
    }
    if ($LASTEXITCODE -ne 0) { throw "warm-up failed: exit $LASTEXITCODE" }

    function Format-Pair($label, $m) {
        '{0}: & /bin/true {1:N2} ms (p90 {2:N2}), sandboxed {3:N2} ms (p90 {4:N2}), added {5:N2} ms' -f $label, $m.Native, $m.NativeP90, $m.Sandboxed, $m.SandboxedP90, $m.Added
    }
    function ConvertTo-PairJson($m) {
        if (-not $m) { return $null }
        [ordered]@{ native_median_ms = $m.Native; native_p90_ms = $m.NativeP90; median_ms = $m.Sandboxed; p90_ms = $m.SandboxedP90; added_ms = $m.Added }
    }
    $results = foreach ($run in 1..$Runs) {
        $loadBefore = Load
        $exec = Measure-Pair '$null = Invoke-RequiemExec -Request $request'
        Push-Location $ws
        try {
            $raw = Measure-Pair '& $launcher @launchArgs'
            $bw = if ($bwrap) { Measure-Pair '& $bwrap @bwrapArgs' }
            $bws = if ($bwrap) { Measure-Pair '& $sh @bwrapSeccompArgs' }
            $joined = if ($joinArgs) { Measure-Pair '& $launcher @joinArgs' }
        }
        finally { Pop-Location }
        $execBwrap = if ($bwrap) {
            $env:REQUIEM_LAUNCHER = 'none'
            try { Measure-Pair '$null = Invoke-RequiemExec -Request $request' } finally { Remove-Item Env:REQUIEM_LAUNCHER }
        }
        $loadAfter = Load
        "run $run of $Runs, load average $loadBefore -> $loadAfter" | Write-Host
        Format-Pair 'Invoke-RequiemExec hermetic+seccomp+deny_network+limits, same request (already recorded), target <= 2 ms added' $exec | Write-Host
        Format-Pair 'requiem-launch alone (same mounts, seccomp, a fresh netns)' $raw | Write-Host
        if ($bw) {
            (Format-Pair 'bwrap alone (equivalent binds, no seccomp filter)' $bw) + ('; requiem-launch is {0:N2}x faster' -f ($bw.Sandboxed / $raw.Sandboxed)) | Write-Host
            (Format-Pair 'bwrap alone with the same seccomp program (sh opens it as fd 3)' $bws) + ('; requiem-launch is {0:N2}x faster' -f ($bws.Sandboxed / $raw.Sandboxed)) | Write-Host
            Format-Pair 'Invoke-RequiemExec, same request, bubblewrap isolator (REQUIEM_LAUNCHER=none)' $execBwrap | Write-Host
        }
        if ($joined) { Format-Pair 'requiem-launch alone joining a held view of the same layout (root)' $joined | Write-Host }
        [ordered]@{
            load_before = $loadBefore; load_after = $loadAfter
            exec = ConvertTo-PairJson $exec; launcher = ConvertTo-PairJson $raw
            bwrap = ConvertTo-PairJson $bw; bwrap_seccomp = ConvertTo-PairJson $bws; exec_bwrap = ConvertTo-PairJson $execBwrap
            launcher_held_view = ConvertTo-PairJson $joined
        }
    }
    "enforced: {0}" -f ($r.Sandbox.Enforced -join ',') | Write-Host

    [ordered]@{
        benchmark = 'hermetic'
        machine = @{ cores = [Environment]::ProcessorCount; os = [Runtime.InteropServices.RuntimeInformation]::OSDescription }
        iterations = $Iterations
        target_added_ms = 2
        enforced = @($r.Sandbox.Enforced)
        bwrap_seccomp_note = 'bwrap without a filter, and with the launcher''s seccomp program opened by sh as fd 3'
        runs = @($results)
    } | ConvertTo-Json -Depth 6 | Set-Content -LiteralPath (Join-Path $OutDirectory 'hermetic.json')
}
finally {
    if ($viewHandle) { $viewHandle.Dispose() }
    Remove-Item -Recurse -Force $work -ErrorAction Ignore
}
