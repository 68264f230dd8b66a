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

    Write-Host '== Bench, compare, drift: regression gates that noise does not fool ==' -ForegroundColor Cyan
    $benchCas = Join-Path $work 'bench-cas'
    Set-Content -LiteralPath (Join-Path $work 'work.sh') -Value 'sleep 0.01'
    $spec = @{ name = 'demo'; warmup = 1; runs = 8; cases = @(@{ name = 'work'; command = 'sh'; argv = @('./work.sh'); cwd = $work }) }
    $baseline = Invoke-RequiemBench -Spec $spec -Cas $benchCas -SaveRef demo/main
    $baseline | Out-Host
    Set-Content -LiteralPath (Join-Path $work 'work.sh') -Value 'sleep 0.05'    # the "code" got 5x slower
    $current = Invoke-RequiemBench -Spec $spec -Cas $benchCas
    Compare-RequiemBench -BaselineRef demo/main -Current $current -Cas $benchCas | Out-Host
    try { Compare-RequiemBench -Baseline $baseline -Current $current -FailOnRegression | Out-Null }
    catch { "gate: $($_.FullyQualifiedErrorId)" | Out-Host }
    Invoke-RequiemBench -Spec @{ runs = 3; warmup = 0; cases = @(@{ name = 'clock'; command_line = 'date +%s.%N' }, @{ name = 'echo'; command_line = 'echo same' }) } -Cas $benchCas |
        Measure-RequiemDrift -Cas $benchCas | Out-Host
}
finally {
    Remove-Item -Recurse -Force $work -ErrorAction Ignore
}
