#requires -Version 7.4
<#
.SYNOPSIS
    A tour of Requiem that does real work with the default store: digest, store, read back, verify.
.PARAMETER ModulePath
    The built module manifest (build.ps1 -Task Demo passes out/Requiem/Requiem.psd1).
#>
param([string] $ModulePath = (Join-Path $PSScriptRoot '../out/Requiem/Requiem.psd1'))

$ErrorActionPreference = 'Stop'
Import-Module $ModulePath

$work = Join-Path ([IO.Path]::GetTempPath()) "requiem-demo-$PID"
New-Item -ItemType Directory -Force -Path $work | Out-Null
try {
    Write-Host "`n== 1. Digests: BLAKE3, like Get-FileHash ==" -ForegroundColor Cyan
    1..3 | ForEach-Object { Set-Content -LiteralPath (Join-Path $work "file$_.txt") -Value "demo file $_" }
    Get-ChildItem $work -File | Get-RequiemDigest | Format-Table -AutoSize | Out-Host
    Get-RequiemDigest -InputObject 'hello' -Domain Cas | Format-List Algorithm, Hash, Domain | Out-Host

    Write-Host '== 2. Verify: a mismatch is a result, not an exception ==' -ForegroundColor Cyan
    $d = Get-RequiemDigest -LiteralPath (Join-Path $work 'file1.txt')
    "file1 intact:   " + (Test-RequiemDigest -LiteralPath $d.Path -Expected $d.Hash -Quiet) | Out-Host
    Add-Content -LiteralPath $d.Path -Value 'tampered'
    "file1 tampered: " + (Test-RequiemDigest -LiteralPath $d.Path -Expected $d.Hash -Quiet) | Out-Host
}
finally {
    Remove-Item -Recurse -Force $work -ErrorAction Ignore
}

# ---- Execution: deterministic runs, replay, health ----
$execWork = Join-Path ([IO.Path]::GetTempPath()) "requiem-demo-exec-$PID"
New-Item -ItemType Directory -Force -Path $execWork | Out-Null
try {
    Write-Host '== Exec 1. What this machine enforces (probed, not declared) ==' -ForegroundColor Cyan
    Get-RequiemHealth | Out-Host

    Write-Host '== Exec 2. The same request twice gives the same result digest ==' -ForegroundColor Cyan
    $req = @{
        command = '/bin/sh'; argv = @('-c', 'echo "hello from $(pwd)"; echo "TZ=$TZ secret=[$DEMO_SECRET]"')
        workspace_root = $execWork; timeout_ms = 5000; max_output_bytes = 4096
        policy = @{ deny_network = $true; max_memory_bytes = 512MB; max_processes = 32 }
    }
    $env:DEMO_SECRET = 'not-for-the-command'
    $a = Invoke-RequiemExec -Request $req -IncludeOutput
    $b = Invoke-RequiemExec -Request $req
    $a.StdoutText | Out-Host
    "first:  $($a.ResultDigest)`nsecond: $($b.ResultDigest)`nidentical: $($a.ResultDigest -eq $b.ResultDigest); confidence: $($a.DeterminismConfidence)" | Out-Host
    "enforced: $($a.Sandbox.Enforced -join ', ')" | Out-Host

    Write-Host '== Exec 3. Replay: a clock-dependent command does not reproduce ==' -ForegroundColor Cyan
    $clock = @{ command = '/bin/date'; argv = @('+%s.%N'); workspace_root = $execWork }
    $recorded = Invoke-RequiemExec -Request $clock
    $replay = Invoke-RequiemReplay -Request $clock -Result $recorded
    "match: $($replay.Match)" | Out-Host
    $replay.Differences | Format-Table Field, Detail -Wrap | Out-Host
    "stable command replays: " + (Invoke-RequiemReplay -Result $a.ResultDigest -Quiet) | Out-Host

    Write-Host '== Exec 4. Doctor ==' -ForegroundColor Cyan
    Test-RequiemHealth | Out-Host
}
finally {
    Remove-Item Env:DEMO_SECRET -ErrorAction Ignore
    Remove-Item -Recurse -Force $execWork -ErrorAction Ignore
}
