# Signature malleability and added signatures (issue 11): a signed envelope has one accepted byte form. The high-S
# twin (r, n-s) of a signature, a second copy of a signature, and an extra signature by a key nobody gave are bytes
# added or changed in the envelope; each must make Test-RequiemProof say Valid = False.
BeforeAll {
    . (Join-Path $PSScriptRoot 'TestSetup.ps1')
    . (Join-Path $PSScriptRoot 'ProofFixture.ps1')
    $script:Dir = New-TestDirectory
    $script:Cas = Join-Path $Dir 'cas'
    $script:Fx = New-ProofFixture -Cas $Cas -OutputFiles @{ 'out/report.txt' = "report`n" }
    $script:Key = Join-Path $Dir 'signer.pem'
    $script:Pub = Join-Path $Dir 'signer.pub.pem'
    $script:KeyInfo = New-RequiemSigningKey -Path $Key -PublicKeyPath $Pub
    $script:OtherKey = Join-Path $Dir 'other.pem'
    $script:OtherPub = Join-Path $Dir 'other.pub.pem'
    $script:OtherInfo = New-RequiemSigningKey -Path $OtherKey -PublicKeyPath $OtherPub
    $script:Signed = Join-Path $Dir 'signed.json'
    New-RequiemProof -Request $Fx.Request -Result $Fx.Result -Cas $Cas -OutFile $Signed -SigningKey $Key | Out-Null
    $script:Envelope = Get-Content $Signed -Raw | ConvertFrom-Json
    $script:HasOpenssl = [bool](Get-Command openssl -ErrorAction Ignore)
    # The order n of the P-256 group (SEC 2), computed here independently of the module.
    $script:N = [Numerics.BigInteger]::Parse('0FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551', 'HexNumber')

    function script:Read-EcdsaSig([byte[]] $Der) {
        $reader = [Formats.Asn1.AsnReader]::new($Der, [Formats.Asn1.AsnEncodingRules]::DER)
        $seq = $reader.ReadSequence()
        [pscustomobject]@{ R = $seq.ReadInteger([Nullable[Formats.Asn1.Asn1Tag]]$null); S = $seq.ReadInteger([Nullable[Formats.Asn1.Asn1Tag]]$null) }
    }

    function script:Write-EcdsaSig([Numerics.BigInteger] $R, [Numerics.BigInteger] $S) {
        $w = [Formats.Asn1.AsnWriter]::new([Formats.Asn1.AsnEncodingRules]::DER)
        $scope = $w.PushSequence([Nullable[Formats.Asn1.Asn1Tag]]$null)
        $w.WriteInteger($R, [Nullable[Formats.Asn1.Asn1Tag]]$null)
        $w.WriteInteger($S, [Nullable[Formats.Asn1.Asn1Tag]]$null)
        $scope.Dispose()
        , $w.Encode()
    }

    function script:Write-Envelope([string] $Path, [object[]] $Signatures) {
        # The canonical envelope form (members sorted) with the given {keyid, sig} list.
        $sigs = ($Signatures | ForEach-Object { '{"keyid":"' + $_.keyid + '","sig":"' + $_.sig + '"}' }) -join ','
        $json = '{"payload":"' + $Envelope.payload + '","payloadType":"' + $Envelope.payloadType + '","signatures":[' + $sigs + ']}'
        [IO.File]::WriteAllText($Path, $json + "`n")
    }

    function script:Get-Pae {
        $payload = [Convert]::FromBase64String($Envelope.payload)
        $type = [Text.Encoding]::UTF8.GetBytes($Envelope.payloadType)
        [byte[]]([Text.Encoding]::ASCII.GetBytes("DSSEv1 $($type.Length) ") + $type + [Text.Encoding]::ASCII.GetBytes(" $($payload.Length) ") + $payload)
    }

    function script:Test-OpensslVerifies([byte[]] $Sig, [string] $PublicKey) {
        $paeFile = Join-Path $Dir 'pae.bin'; $sigFile = Join-Path $Dir 'sig.der'
        [IO.File]::WriteAllBytes($paeFile, (Get-Pae))
        [IO.File]::WriteAllBytes($sigFile, $Sig)
        $null = & openssl dgst -sha256 -verify $PublicKey -signature $sigFile $paeFile 2>&1
        return $LASTEXITCODE -eq 0
    }
}
AfterAll { Remove-Item -Recurse -Force $script:Dir -ErrorAction Ignore }

Describe 'Signatures have one accepted form' {
    It 'signs in low-S form (16 signatures), and openssl verifies what the module signs' {
        $half = $N / 2
        for ($i = 0; $i -lt 16; $i++) {
            $file = Join-Path $Dir "sign-$i.json"
            New-RequiemProof -Request $Fx.Request -Result $Fx.Result -Cas $Cas -OutFile $file -SigningKey $Key | Out-Null
            $der = [Convert]::FromBase64String((Get-Content $file -Raw | ConvertFrom-Json).signatures[0].sig)
            (Read-EcdsaSig $der).S -le $half | Should -BeTrue -Because "signature $i must be low-S"
            (Test-RequiemProof -Path $file -Cas $Cas -PublicKey $Pub).Valid | Should -BeTrue
            if ($HasOpenssl -and $i -lt 4) { Test-OpensslVerifies $der $Pub | Should -BeTrue }
        }
    }

    It 'refuses the high-S twin (r, n-s) of a valid signature, which openssl still verifies' {
        $der = [Convert]::FromBase64String($Envelope.signatures[0].sig)
        $sig = Read-EcdsaSig $der
        $twin = Write-EcdsaSig $sig.R ($N - $sig.S)
        if ($HasOpenssl) { Test-OpensslVerifies $twin $Pub | Should -BeTrue -Because 'the twin is a mathematically valid ECDSA signature' }
        $file = Join-Path $Dir 'high-s.json'
        Write-Envelope $file @(@{ keyid = $KeyInfo.KeyId; sig = [Convert]::ToBase64String($twin) })
        $v = Test-RequiemProof -Path $file -Cas $Cas -PublicKey $Pub
        $v.Valid | Should -BeFalse
        $v.SignatureVerified | Should -BeFalse
        ($v.Reasons -join "`n") | Should -Match 'high S value'
        { Test-RequiemProof -Path $file -Cas $Cas -PublicKey $Pub -FailOnInvalid -ErrorAction Stop } |
            Should -Throw -ErrorId 'ProofInvalid,Requiem.PowerShell.TestRequiemProofCommand'
    }

    It 'refuses a second copy of a valid signature' {
        $file = Join-Path $Dir 'duplicate.json'
        $one = @{ keyid = $KeyInfo.KeyId; sig = $Envelope.signatures[0].sig }
        Write-Envelope $file @($one, $one)
        $v = Test-RequiemProof -Path $file -Cas $Cas -PublicKey $Pub
        $v.Valid | Should -BeFalse
        ($v.Reasons -join "`n") | Should -Match 'signs more than once'
    }

    It 'refuses an extra, itself valid, signature by a key that was not given' {
        # A real signature by the other key over the same PAE (openssl makes it), added next to the trusted one.
        if (-not $HasOpenssl) { Set-ItResult -Skipped -Because 'openssl makes the second signature'; return }
        $paeFile = Join-Path $Dir 'pae-extra.bin'; $sigFile = Join-Path $Dir 'sig-extra.der'
        [IO.File]::WriteAllBytes($paeFile, (Get-Pae))
        do {
            & openssl dgst -sha256 -sign $OtherKey -out $sigFile $paeFile
            $extra = [IO.File]::ReadAllBytes($sigFile)
        } while ((Read-EcdsaSig $extra).S -gt ($N / 2))   # a low-S one, so only the unknown key is the problem
        $file = Join-Path $Dir 'extra.json'
        Write-Envelope $file @(
            @{ keyid = $KeyInfo.KeyId; sig = $Envelope.signatures[0].sig }
            @{ keyid = $OtherInfo.KeyId; sig = [Convert]::ToBase64String($extra) })
        $v = Test-RequiemProof -Path $file -Cas $Cas -PublicKey $Pub
        $v.Valid | Should -BeFalse
        ($v.Reasons -join "`n") | Should -Match "is not a trusted key.*every signature in the envelope must verify"
        # With both keys given, both signatures verify and the proof is valid (two signers are allowed).
        $both = Join-Path $Dir 'both.pem'
        (Get-Content $Pub -Raw) + (Get-Content $OtherPub -Raw) | Set-Content $both
        (Test-RequiemProof -Path $file -Cas $Cas -TrustedKeys $both).Valid | Should -BeTrue
    }

    It 'accepts an openssl signature in low-S form and refuses one in high-S form' {
        if (-not $HasOpenssl) { Set-ItResult -Skipped -Because 'needs openssl'; return }
        $paeFile = Join-Path $Dir 'pae-ossl.bin'; $sigFile = Join-Path $Dir 'sig-ossl.der'
        [IO.File]::WriteAllBytes($paeFile, (Get-Pae))
        $seen = @{}
        for ($i = 0; $i -lt 64 -and $seen.Count -lt 2; $i++) {
            & openssl dgst -sha256 -sign $Key -out $sigFile $paeFile
            $der = [IO.File]::ReadAllBytes($sigFile)
            $seen[((Read-EcdsaSig $der).S -gt ($N / 2))] = $der
        }
        $seen.Count | Should -Be 2 -Because 'openssl makes low-S and high-S signatures about equally often'
        $file = Join-Path $Dir 'ossl.json'
        Write-Envelope $file @(@{ keyid = $KeyInfo.KeyId; sig = [Convert]::ToBase64String($seen[$false]) })
        (Test-RequiemProof -Path $file -Cas $Cas -PublicKey $Pub).Valid | Should -BeTrue
        Write-Envelope $file @(@{ keyid = $KeyInfo.KeyId; sig = [Convert]::ToBase64String($seen[$true]) })
        (Test-RequiemProof -Path $file -Cas $Cas -PublicKey $Pub).Valid | Should -BeFalse
    }
}
