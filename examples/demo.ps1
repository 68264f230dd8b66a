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

    Write-Host '== 3. CAS: store, read back, verify, statistics, GC dry run ==' -ForegroundColor Cyan
    # A store of its own under the demo folder (drop -Cas to use the default store: $env:REQUIEM_CAS, config, data dir).
    $cas = Join-Path $work 'cas'
    $stored = Get-ChildItem $work -File | Add-RequiemCasObject -Cas $cas -Compress Zstd
    $stored | Format-Table Hash, Size, StoredSize, Encoding, Existed -AutoSize | Out-Host
    $note = 'hello' | Add-RequiemCasObject -Cas $cas
    "again -> Existed: " + ('hello' | Add-RequiemCasObject -Cas $cas).Existed | Out-Host
    "read back by prefix $($note.Hash.Substring(0, 8)): " + (Export-RequiemCasObject -Cas $cas -Hash $note.Hash.Substring(0, 8) -Raw) | Out-Host
    $restored = Join-Path $work 'restored.txt'
    Export-RequiemCasObject -Cas $cas -Hash $stored[0].Hash -Destination $restored
    "restored file identical: " + ((Get-FileHash $restored).Hash -eq (Get-FileHash $stored[0].Path).Hash) | Out-Host
    Set-RequiemCasRef -Cas $cas -Name demo/note -Hash $note.Hash
    Test-RequiemCas -Cas $cas -All | Out-Host
    Get-RequiemCasStatistic -Cas $cas -Top 3 | Out-Host
    # Everything is younger than the grace period; with -GracePeriod 0 the unreferenced objects would go.
    Optimize-RequiemCas -Cas $cas -GracePeriod 0 -WhatIf | Format-List DryRun, Scanned, RefCount, Reachable, RemovedCount, BytesFreed | Out-Host
}
finally {
    Remove-Item -Recurse -Force $work -ErrorAction Ignore
}
