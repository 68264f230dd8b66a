#requires -Version 7.4
<#
.SYNOPSIS
    Proof benchmark: generate and verify proofs for -Count execution results (default 1,000), unsigned and signed,
    against the real alternatives run in the same process/machine: openssl signing and verifying the same DSSE PAEs
    (one process per signature, as a shell script would) and b3sum hashing the same referenced bytes.
.PARAMETER ModulePath
    The built module manifest (build.ps1 -Task Bench passes out/Requiem/Requiem.psd1).
.PARAMETER OutDirectory
    Where proof.bench.json is written.
#>
param(
    [string] $ModulePath = (Join-Path $PSScriptRoot '../out/Requiem/Requiem.psd1'),
    [string] $OutDirectory = (Join-Path $PSScriptRoot '../out/bench'),
    [int] $Count = 1000
)
$ErrorActionPreference = 'Stop'
Import-Module $ModulePath
. (Join-Path $PSScriptRoot '../tests/Pester/ProofFixture.ps1')

$work = Join-Path ([IO.Path]::GetTempPath()) "requiem-proof-bench-$PID"
New-Item -ItemType Directory -Force -Path $work | Out-Null
try {
    $cas = Join-Path $work 'cas'
    Write-Host "Building $Count execution results (fixture, not timed)..."
    $fixtures = for ($i = 0; $i -lt $Count; $i++) {
        New-ProofFixture -Cas $cas -Seed $i -Stdout "result $i`n" -OutputFiles @{ 'out/report.txt' = "report $i`n" }
    }
    $key = New-RequiemSigningKey -Path (Join-Path $work 'bench.pem')
    $unsignedDir = New-Item -ItemType Directory (Join-Path $work 'unsigned')
    $signedDir = New-Item -ItemType Directory (Join-Path $work 'signed')

    function Measure-Seconds([scriptblock] $Block) {
        $sw = [Diagnostics.Stopwatch]::StartNew(); & $Block | Out-Null; $sw.Stop(); $sw.Elapsed.TotalSeconds
    }

    $t = [ordered]@{}
    $t.new_unsigned = Measure-Seconds { foreach ($f in $fixtures) { New-RequiemProof -Request $f.Request -Result $f.Result -Cas $cas -OutFile $unsignedDir } }
    $t.new_signed = Measure-Seconds { foreach ($f in $fixtures) { New-RequiemProof -Request $f.Request -Result $f.Result -Cas $cas -OutFile $signedDir -SigningKey $key.Path } }
    $t.test_unsigned = Measure-Seconds { Test-RequiemProof -Path (Join-Path $unsignedDir '*.proof.json') -Cas $cas }
    $t.test_signed = Measure-Seconds { Test-RequiemProof -Path (Join-Path $signedDir '*.proof.json') -Cas $cas -PublicKey $key.PublicKeyPath }
    $signedFiles = Get-ChildItem $signedDir -Filter *.proof.json
    $valid = @(Test-RequiemProof -LiteralPath $signedFiles.FullName -Cas $cas -PublicKey $key.PublicKeyPath -Quiet | Where-Object { $_ }).Count
    if ($valid -ne $Count) { throw "only $valid of $Count signed proofs verified" }

    # The same PAEs and signatures, for openssl.
    $paeDir = New-Item -ItemType Directory (Join-Path $work 'pae')
    $i = 0
    foreach ($file in $signedFiles) {
        $env = Get-Content $file.FullName -Raw | ConvertFrom-Json
        $payload = [Convert]::FromBase64String($env.payload)
        $type = [Text.Encoding]::UTF8.GetBytes($env.payloadType)
        $pae = [byte[]]([Text.Encoding]::ASCII.GetBytes("DSSEv1 $($type.Length) ") + $type + [Text.Encoding]::ASCII.GetBytes(" $($payload.Length) ") + $payload)
        [IO.File]::WriteAllBytes((Join-Path $paeDir "$i.pae"), $pae)
        [IO.File]::WriteAllBytes((Join-Path $paeDir "$i.sig"), [Convert]::FromBase64String($env.signatures[0].sig))
        $i++
    }
    $comparisons = [ordered]@{}
    if (Get-Command openssl -ErrorAction Ignore) {
        $t.openssl_sign = Measure-Seconds { for ($j = 0; $j -lt $Count; $j++) { & openssl dgst -sha256 -sign $key.Path -out (Join-Path $paeDir "$j.osig") (Join-Path $paeDir "$j.pae") } }
        $t.openssl_verify = Measure-Seconds {
            for ($j = 0; $j -lt $Count; $j++) {
                $null = & openssl dgst -sha256 -verify $key.PublicKeyPath -signature (Join-Path $paeDir "$j.sig") (Join-Path $paeDir "$j.pae")
                if ($LASTEXITCODE -ne 0) { throw "openssl rejected signature $j" }
            }
        }
    }
    else { Write-Warning 'openssl not found: no openssl comparison' }
    # In-process ECDSA alone (the cryptographic floor of signing), on the same PAE bytes.
    $ecdsa = [Security.Cryptography.ECDsa]::Create()
    $ecdsa.ImportFromPem((Get-Content $key.Path -Raw))
    $paes = foreach ($j in 0..($Count - 1)) { , [IO.File]::ReadAllBytes((Join-Path $paeDir "$j.pae")) }
    $t.dotnet_ecdsa_sign_only = Measure-Seconds { foreach ($p in $paes) { $ecdsa.SignData($p, 'SHA256', 'Rfc3279DerSequence') } }
    # The bytes a verification re-hashes: every object referenced by every proof.
    $objects = Get-ChildItem (Join-Path $cas 'objects') -Recurse -File
    $objectBytes = ($objects | Measure-Object Length -Sum).Sum
    if (Get-Command b3sum -ErrorAction Ignore) {
        $t.b3sum_all_objects = Measure-Seconds { $objects.FullName | & xargs b3sum --no-names | Out-Null }
    }

    $per = { param($s) [math]::Round($s * 1000 / $Count, 3) }
    $report = [ordered]@{
        benchmark = 'proof'
        count = $Count
        machine = [ordered]@{ os = [Runtime.InteropServices.RuntimeInformation]::OSDescription; cpus = [Environment]::ProcessorCount; pwsh = "$($PSVersionTable.PSVersion)" }
        objects = $objects.Count
        object_bytes = $objectBytes
        seconds = $t
        ms_per_proof = [ordered]@{}
        ratios = [ordered]@{}
    }
    foreach ($k in $t.Keys) { $report.ms_per_proof[$k] = & $per $t[$k] }
    if ($t.Contains('openssl_sign')) {
        $report.ratios.new_signed_vs_openssl_sign = [math]::Round($t.new_signed / $t.openssl_sign, 3)
        $report.ratios.test_signed_vs_openssl_verify = [math]::Round($t.test_signed / $t.openssl_verify, 3)
    }
    $report.ratios.new_signed_vs_dotnet_ecdsa_only = [math]::Round($t.new_signed / $t.dotnet_ecdsa_sign_only, 3)
    if ($t.Contains('b3sum_all_objects')) { $report.ratios.test_unsigned_vs_b3sum_objects = [math]::Round($t.test_unsigned / $t.b3sum_all_objects, 3) }

    New-Item -ItemType Directory -Force -Path $OutDirectory | Out-Null
    $report | ConvertTo-Json -Depth 5 | Set-Content (Join-Path $OutDirectory 'proof.bench.json')
    Write-Host ("{0,-28} {1,10} {2,12}" -f 'step', 'seconds', 'ms/proof')
    foreach ($k in $t.Keys) { Write-Host ("{0,-28} {1,10:N3} {2,12:N3}" -f $k, $t[$k], $report.ms_per_proof[$k]) }
    foreach ($k in $report.ratios.Keys) { Write-Host ("ratio {0,-40} {1,8:N3}" -f $k, $report.ratios[$k]) }
    Write-Host "objects re-hashed per full verification pass: $($objects.Count) ($objectBytes bytes)"
}
finally {
    Remove-Item -Recurse -Force $work -ErrorAction Ignore
}
