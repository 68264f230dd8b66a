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
    3. Invoke-RequiemExec of the same request with the bubblewrap isolator (REQUIEM_LAUNCHER=none) vs `& /bin/true`.
.PARAMETER Iterations
    Calls per side, interleaved with their own `& /bin/true` baseline.
#>
param(
    [string] $ModulePath = (Join-Path $PSScriptRoot '../out/Requiem/Requiem.psd1'),
    [string] $WorkRoot = [IO.Path]::GetTempPath(),
    [string] $OutDirectory = (Join-Path $PSScriptRoot '../out/bench'),
    [int] $Iterations = 200
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
    if ($bwrap) {
        & $sh -c "'$launcher' --print-seccomp > '$(Join-Path $work 'filter.bpf')'"
        if ($LASTEXITCODE -ne 0) { throw 'requiem-launch --print-seccomp failed' }
    }

    function Median($xs) { $s = @($xs | Sort-Object); $s[[int][Math]::Floor($s.Count / 2)] }
    function Measure-Pair([scriptblock] $Run) {
        $n = [Collections.Generic.List[double]]::new(); $s = [Collections.Generic.List[double]]::new()
        $sw = [Diagnostics.Stopwatch]::new()
        for ($i = 0; $i -lt $Iterations; $i++) {
            $sw.Restart(); & $true_; $sw.Stop(); $n.Add($sw.Elapsed.TotalMilliseconds)
            $sw.Restart(); $null = & $Run; $sw.Stop(); $s.Add($sw.Elapsed.TotalMilliseconds)
        }
        [pscustomobject]@{ Native = (Median $n); Sandboxed = (Median $s); Added = (Median $s) - (Median $n) }
    }
    # warm-up
    1..20 | ForEach-Object { & $true_; $null = Invoke-RequiemExec -Request $request; Push-Location $ws; & $launcher @launchArgs; Pop-Location }
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

    $exec = Measure-Pair { Invoke-RequiemExec -Request $request }
    Push-Location $ws
    try {
        $raw = Measure-Pair { & $launcher @launchArgs }
        $bw = if ($bwrap) { Measure-Pair { & $bwrap @bwrapArgs } }
        $bws = if ($bwrap) { Measure-Pair { & $sh @bwrapSeccompArgs } }
    }
    finally { Pop-Location }
    $execBwrap = if ($bwrap) {
        $env:REQUIEM_LAUNCHER = 'none'
        try { Measure-Pair { Invoke-RequiemExec -Request $request } } finally { Remove-Item Env:REQUIEM_LAUNCHER }
    }

    "Invoke-RequiemExec hermetic+seccomp+deny_network+limits, same request (already recorded): & /bin/true {0:N2} ms, sandboxed {1:N2} ms, added {2:N2} ms (target <= 2 ms)" -f $exec.Native, $exec.Sandboxed, $exec.Added | Write-Host
    "requiem-launch alone (same mounts, seccomp, netns):  & /bin/true {0:N2} ms, launcher {1:N2} ms, added {2:N2} ms" -f $raw.Native, $raw.Sandboxed, $raw.Added | Write-Host
    if ($bw) {
        "bwrap alone (equivalent binds, no seccomp filter):  & /bin/true {0:N2} ms, bwrap {1:N2} ms, added {2:N2} ms; requiem-launch is {3:N2}x faster" -f $bw.Native, $bw.Sandboxed, $bw.Added, ($bw.Sandboxed / $raw.Sandboxed) | Write-Host
        "bwrap alone with the same seccomp program (sh opens it as fd 3):  & /bin/true {0:N2} ms, bwrap {1:N2} ms, added {2:N2} ms; requiem-launch is {3:N2}x faster" -f $bws.Native, $bws.Sandboxed, $bws.Added, ($bws.Sandboxed / $raw.Sandboxed) | Write-Host
        "Invoke-RequiemExec, same request, bubblewrap isolator (REQUIEM_LAUNCHER=none):  & /bin/true {0:N2} ms, sandboxed {1:N2} ms, added {2:N2} ms" -f $execBwrap.Native, $execBwrap.Sandboxed, $execBwrap.Added | Write-Host
    }
    "enforced: {0}" -f ($r.Sandbox.Enforced -join ',') | Write-Host

    [ordered]@{
        benchmark = 'hermetic'
        machine = @{ cores = [Environment]::ProcessorCount; os = [Runtime.InteropServices.RuntimeInformation]::OSDescription }
        iterations = $Iterations
        exec = [ordered]@{ native_median_ms = $exec.Native; sandboxed_median_ms = $exec.Sandboxed; added_ms = $exec.Added; target_added_ms = 2; enforced = @($r.Sandbox.Enforced) }
        launcher = [ordered]@{ native_median_ms = $raw.Native; median_ms = $raw.Sandboxed; added_ms = $raw.Added }
        bwrap = if ($bw) { [ordered]@{ native_median_ms = $bw.Native; median_ms = $bw.Sandboxed; added_ms = $bw.Added; seccomp = $false } } else { $null }
        bwrap_seccomp = if ($bws) { [ordered]@{ native_median_ms = $bws.Native; median_ms = $bws.Sandboxed; added_ms = $bws.Added; seccomp = $true } } else { $null }
        exec_bwrap = if ($execBwrap) { [ordered]@{ native_median_ms = $execBwrap.Native; sandboxed_median_ms = $execBwrap.Sandboxed; added_ms = $execBwrap.Added } } else { $null }
    } | ConvertTo-Json -Depth 5 | Set-Content -LiteralPath (Join-Path $OutDirectory 'hermetic.json')
}
finally {
    Remove-Item -Recurse -Force $work -ErrorAction Ignore
}
