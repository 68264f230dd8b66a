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
        # hermetic: only the workspace and the toolchain exist for the command (what makes 'high' confidence possible)
        policy = @{ deny_network = $true; max_memory_bytes = 512MB; max_processes = 32; filesystem = 'hermetic' }
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

# == Proof bundles: run -> prove -> verify -> tamper -> verify fails ==
$proofWork = Join-Path ([IO.Path]::GetTempPath()) "requiem-demo-proof-$PID"
New-Item -ItemType Directory -Force -Path $proofWork | Out-Null
$savedCas = $env:REQUIEM_CAS
$env:REQUIEM_CAS = Join-Path $proofWork 'cas'
try {
    Write-Host '== Proofs: sign an execution, verify it, tamper with it ==' -ForegroundColor Cyan
    $key = New-RequiemSigningKey -Path (Join-Path $proofWork 'demo.pem')
    $mode = if ($IsWindows) { 'inherits the directory ACL' } else { (Get-Item $key.Path).UnixFileMode }
    "signing key $($key.KeyId.Substring(0, 16))...  private key mode: $mode" | Out-Host
    if (Get-Command Invoke-RequiemExec -ErrorAction Ignore) {
        $request = @{ command = '/bin/echo'; argv = @('proof demo'); workspace_root = $proofWork }
        $result = Invoke-RequiemExec -Request $request
        'ran /bin/echo with Invoke-RequiemExec' | Out-Host
    }
    else {
        . (Join-Path $PSScriptRoot '../tests/Pester/ProofFixture.ps1')
        $fixture = New-ProofFixture -Cas $env:REQUIEM_CAS -Workspace $proofWork -Stdout "proof demo`n"
        $request = $fixture.Request
        $result = $fixture.Result
        'Invoke-RequiemExec is not in this build: using a recorded result built by tests/Pester/ProofFixture.ps1' | Out-Host
    }
    $file = Join-Path $proofWork 'run.proof.json'
    $proof = New-RequiemProof -Request $request -Result $result -SigningKey $key.Path -OutFile $file
    $proof | Format-Table | Out-Host
    Test-RequiemProof -Path $file -PublicKey $key.PublicKeyPath | Format-Table | Out-Host

    $tar = Join-Path $proofWork 'run.proof.tar'
    Export-RequiemProof -Path $file -Destination $tar | Format-Table | Out-Host
    $fresh = Join-Path $proofWork 'third-party-cas'
    $imported = Import-RequiemProof -Path $tar -Cas $fresh
    "verified by a third party in a fresh store: " + (Test-RequiemProof -MerkleRoot $imported.MerkleRoot -Cas $fresh -PublicKey $key.PublicKeyPath -Quiet) | Out-Host

    Write-Host '-- tamper: change one character of stdout in the CAS --' -ForegroundColor Yellow
    $stdout = $proof.Bundle.OutputDigests[0]
    $object = Join-Path $env:REQUIEM_CAS "objects/$($stdout.Substring(0, 2))/$stdout"
    $bytes = [IO.File]::ReadAllBytes($object); $bytes[0] = $bytes[0] -bxor 0x20; [IO.File]::WriteAllBytes($object, $bytes)
    Test-RequiemProof -Path $file -PublicKey $key.PublicKeyPath | Format-List Valid, Reasons | Out-Host

    Write-Host '-- tamper: a signature checked with another key --' -ForegroundColor Yellow
    $other = New-RequiemSigningKey -Path (Join-Path $proofWork 'other.pem')
    Test-RequiemProof -Path $file -PublicKey $other.PublicKeyPath -Cas $fresh | Format-List Valid, Reasons | Out-Host
}
finally {
    $env:REQUIEM_CAS = $savedCas
    Remove-Item -Recurse -Force $proofWork -ErrorAction Ignore
}
