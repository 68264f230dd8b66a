BeforeDiscovery {
    # -Skip conditions below ask whether the exec engine's cmdlets exist: import the built module for discovery too.
    Import-Module (Join-Path $PSScriptRoot '../../out/Requiem/Requiem.psd1')
}

BeforeAll {
    . (Join-Path $PSScriptRoot 'TestSetup.ps1')
    . (Join-Path $PSScriptRoot 'ProofFixture.ps1')
    $script:Dir = New-TestDirectory
    $script:Cas = Join-Path $Dir 'cas'
    $script:Fx = New-ProofFixture -Cas $Cas -OutputFiles @{ 'out/report.txt' = "report`n" } -InputFiles @{ 'data/in.txt' = 'input' }
    $script:HasOpenssl = [bool](Get-Command openssl -ErrorAction Ignore)
    $script:HasB3sum = [bool](Get-Command b3sum -ErrorAction Ignore)
    $script:Key = Join-Path $Dir 'signer.pem'
    $script:Pub = Join-Path $Dir 'signer.pub.pem'
    $script:KeyInfo = New-RequiemSigningKey -Path $Key -PublicKeyPath $Pub

    function script:Get-Blake3 {
        # BLAKE3 of bytes from an independent implementation (b3sum) when present.
        param([byte[]] $Bytes)
        if ($script:HasB3sum) {
            $f = Join-Path $script:Dir 'b3.bin'
            [IO.File]::WriteAllBytes($f, $Bytes)
            return [Convert]::FromHexString((& b3sum --no-names $f).Trim())
        }
        return [Convert]::FromHexString((Get-RequiemDigest -InputObject $Bytes).Hash)
    }

    function script:Get-DssePae {
        param([string] $PayloadType, [byte[]] $Payload)
        $type = [Text.Encoding]::UTF8.GetBytes($PayloadType)
        [byte[]]([Text.Encoding]::ASCII.GetBytes("DSSEv1 $($type.Length) ") + $type + [Text.Encoding]::ASCII.GetBytes(" $($Payload.Length) ") + $Payload)
    }
}
AfterAll { Remove-Item -Recurse -Force $script:Dir -ErrorAction Ignore }

Describe 'New-RequiemSigningKey' {
    It 'writes a PEM key pair, the private key owner-only, readable by openssl, keyid = SHA-256 of the SPKI' {
        $priv = Join-Path $Dir 'k1.pem'
        $info = New-RequiemSigningKey -Path $priv -PublicKeyPath (Join-Path $Dir 'k1.pub.pem')
        $info.Algorithm | Should -Be 'ECDSA-P256-SHA256'
        (Get-Content $priv -First 1) | Should -Be '-----BEGIN PRIVATE KEY-----'
        (Get-Content $info.PublicKeyPath -First 1) | Should -Be '-----BEGIN PUBLIC KEY-----'
        if (-not $IsWindows) { (Get-Item $priv).UnixFileMode | Should -Be ([IO.UnixFileMode]'UserRead, UserWrite') }
        if ($HasOpenssl) {
            (& openssl pkey -in $priv -noout -text) -join "`n" | Should -Match 'prime256v1|P-256'
            $der = Join-Path $Dir 'k1.pub.der'
            & openssl pkey -pubin -in $info.PublicKeyPath -outform DER -out $der
            $info.KeyId | Should -Be (Get-FileHash $der -Algorithm SHA256).Hash.ToLowerInvariant()
        }
    }

    It 'defaults the public key path, refuses to overwrite without -Force, and -Force keeps mode 0600' {
        $priv = Join-Path $Dir 'k2.pem'
        $info = New-RequiemSigningKey -Path $priv
        $info.PublicKeyPath | Should -Be (Join-Path $Dir 'k2.pub.pem')
        $before = Get-Content $priv -Raw
        { New-RequiemSigningKey -Path $priv -ErrorAction Stop } | Should -Throw -ErrorId 'KeyFileExists,Requiem.PowerShell.NewRequiemSigningKeyCommand'
        Get-Content $priv -Raw | Should -Be $before
        if (-not $IsWindows) { chmod 644 $priv }
        $again = New-RequiemSigningKey -Path $priv -Force
        $again.KeyId | Should -Not -Be $info.KeyId
        if (-not $IsWindows) { (Get-Item $priv).UnixFileMode | Should -Be ([IO.UnixFileMode]'UserRead, UserWrite') }
    }

    It '-WhatIf creates nothing' {
        $priv = Join-Path $Dir 'k3.pem'
        New-RequiemSigningKey -Path $priv -WhatIf
        Test-Path $priv | Should -BeFalse
    }
}

Describe 'New-RequiemProof and Test-RequiemProof (unsigned)' {
    BeforeAll {
        $script:File = Join-Path $Dir 'proof.json'
        $script:Proof = New-RequiemProof -Request $Fx.Request -Result $Fx.Result -Cas $Cas -OutFile $File
    }

    It 'writes the seed bundle: canonical JSON, merkle_root at top level, digests in the documented order' {
        $text = [IO.File]::ReadAllText($File)
        $text | Should -Match '^\{"contract_version":"1.1",.*"merkle_root":"[0-9a-f]{64}".*"signature_stub":""\}\n$'
        $b = $text | ConvertFrom-Json
        $b.merkle_root | Should -Be $Proof.MerkleRoot
        $b.input_digests | Should -Be (@($Fx.RequestDigest) + $Fx.InputDigests)
        $b.output_digests | Should -Be (@($Fx.StdoutDigest, $Fx.StderrDigest) + $Fx.OutputDigests)
        $b.policy_digest | Should -Be $Fx.PolicyDigest
        $b.request_digest | Should -Be $Fx.RequestDigest
        $b.result_digest | Should -Be $Fx.ResultDigest
        $b.engine_version | Should -Be '0.1.0'
        $b.contract_version | Should -Be '1.1'
        # The transcript is the stored canonical result; the request object hashes (req:) to the request digest.
        $objects = Join-Path $Cas 'objects'
        $transcript = [IO.File]::ReadAllText((Join-Path $objects "$($b.replay_transcript_digest.Substring(0,2))/$($b.replay_transcript_digest)"))
        $transcript | Should -Be $Fx.Result
        $requestBytes = [IO.File]::ReadAllBytes((Join-Path $objects "$($b.request_object.Substring(0,2))/$($b.request_object)"))
        (Get-RequiemDigest -InputObject $requestBytes -Domain Request).Hash | Should -Be $Fx.RequestDigest
    }

    It 'conforms to schemas/proof-bundle.schema.json, and signed files to dsse-envelope.schema.json' {
        $schemas = Join-Path (Split-Path $ModulePath) 'schemas'
        Test-Json -Json (Get-Content $File -Raw) -SchemaFile (Join-Path $schemas 'proof-bundle.schema.json') | Should -BeTrue
        $signed = New-RequiemProof -Request $Fx.Request -Result $Fx.Result -Cas $Cas -SigningKey $Key
        Test-Json -Json $signed.Json -SchemaFile (Join-Path $schemas 'dsse-envelope.schema.json') | Should -BeTrue
        Test-Json -Json '{"merkle_root":"x"}' -SchemaFile (Join-Path $schemas 'proof-bundle.schema.json') -ErrorAction Ignore | Should -BeFalse
    }

    It 'has a Merkle root that an independent implementation of the documented construction recomputes' {
        $b = Get-Content $File -Raw | ConvertFrom-Json
        $leaves = [Collections.Generic.List[object]]::new()
        for ($i = 0; $i -lt $b.input_digests.Count; $i++) { $leaves.Add(@("input_digests/$i", [Convert]::FromHexString($b.input_digests[$i]))) }
        for ($i = 0; $i -lt $b.output_digests.Count; $i++) { $leaves.Add(@("output_digests/$i", [Convert]::FromHexString($b.output_digests[$i]))) }
        foreach ($n in 'policy_digest', 'replay_transcript_digest') { $leaves.Add(@($n, [Convert]::FromHexString($b.$n))) }
        foreach ($n in 'engine_version', 'contract_version') { $leaves.Add(@($n, [Text.Encoding]::UTF8.GetBytes($b.$n))) }
        foreach ($n in 'request_digest', 'result_digest', 'request_object') { $leaves.Add(@($n, [Convert]::FromHexString($b.$n))) }
        $level = @(foreach ($l in $leaves) { , (Get-Blake3 ([byte[]]([Text.Encoding]::UTF8.GetBytes("leaf:$($l[0])") + [byte]0 + $l[1]))) })
        while ($level.Count -gt 1) {
            $next = @(for ($i = 0; $i + 1 -lt $level.Count; $i += 2) { , (Get-Blake3 ([byte[]]([Text.Encoding]::ASCII.GetBytes('node:') + $level[$i] + $level[$i + 1]))) })
            if ($level.Count % 2) { $next += , $level[-1] }
            $level = $next
        }
        [Convert]::ToHexString($level[0]).ToLowerInvariant() | Should -Be $b.merkle_root
    }

    It 'verifies: Valid, no reasons, every object checked; stores the bundle as a GC root under proofs/<merkle_root>' {
        $v = Test-RequiemProof -Path $File -Cas $Cas
        $v.Valid | Should -BeTrue
        $v.Reasons | Should -BeNullOrEmpty
        $v.ObjectsChecked | Should -Be 7
        $v.Signed | Should -BeFalse
        Test-RequiemProof -Path $File -Cas $Cas -Quiet | Should -BeTrue
        # The ref points at the latest proof of this execution (other tests sign the same one): re-prove unsigned.
        $again = New-RequiemProof -Request $Fx.Request -Result $Fx.Result -Cas $Cas
        $again.ManifestDigest | Should -Be $Proof.ManifestDigest
        (Get-Content (Join-Path $Cas "refs/proofs/$($Proof.MerkleRoot)") -Raw).Trim() | Should -Be $Proof.ManifestDigest
        $manifest = Get-Content (Join-Path $Cas "objects/$($Proof.ManifestDigest.Substring(0,2))/$($Proof.ManifestDigest)") -Raw | ConvertFrom-Json
        $manifest.kind | Should -Be 'proof_bundle'
        $manifest.references | Should -Contain $Fx.StdoutDigest
        $manifest.references | Should -Contain $Fx.PolicyDigest
        $manifest.body.merkle_root | Should -Be $Proof.MerkleRoot
    }

    It 'accepts the result as <Form> and makes the same bundle' -ForEach @(
        @{ Form = 'JSON text' }, @{ Form = 'a file path' }, @{ Form = 'a FileInfo' }, @{ Form = 'a ConvertFrom-Json object' }, @{ Form = 'a CAS digest' }, @{ Form = 'a hashtable' }
    ) {
        $resultFile = Join-Path $Dir 'result.json'
        Set-Content -LiteralPath $resultFile -Value $Fx.Result -NoNewline
        $value = switch ($Form) {
            'JSON text' { $Fx.Result }
            'a file path' { $resultFile }
            'a FileInfo' { Get-Item $resultFile }
            'a ConvertFrom-Json object' { $Fx.Result | ConvertFrom-Json }
            'a CAS digest' { Add-FixtureBlob -Cas $Cas -Bytes ([Text.Encoding]::UTF8.GetBytes($Fx.Result)) }
            'a hashtable' { $Fx.Result | ConvertFrom-Json -AsHashtable }
        }
        $p = New-RequiemProof -Request $Fx.RequestJson -Result $value -Cas $Cas
        $p.ResultDigest | Should -Be $Fx.ResultDigest
        $p.Bundle.OutputDigests | Should -Be $Proof.Bundle.OutputDigests
        $p.Bundle.RequestObject | Should -Be $Proof.Bundle.RequestObject
        ($p | Test-RequiemProof -Cas $Cas).Valid | Should -BeTrue
    }

    It 'accepts a pipeline object with PascalCase properties (like Invoke-RequiemExec output)' {
        Invoke-Expression @'
class FxConfidence { [string]$Level; [double]$Score; [string[]]$Reasons }
class FxSandbox { [string[]]$Enforced; [string[]]$NotEnforced }
class FxFile { [string]$Path; [string]$Digest; [int]$Bytes }
class FxInput { [string]$Path; [string]$Digest }
class FxResult {
    [string]$ContractVersion; [string]$Engine; [string]$EngineVersion; [string]$RequestDigest; [int]$ExitCode; [object]$Signal
    [bool]$TimedOut; [string]$StdoutDigest; [long]$StdoutBytes; [bool]$StdoutTruncated; [string]$StderrDigest; [long]$StderrBytes
    [bool]$StderrTruncated; [FxFile[]]$OutputFiles; [FxInput[]]$InputDigests; [string]$PolicyDigest; [FxSandbox]$Sandbox
    [FxConfidence]$DeterminismConfidence; [long]$DurationMs; [string]$StartedAt; [string]$ResultDigest
}
'@
        $j = $Fx.Result | ConvertFrom-Json -DateKind String
        $r = [FxResult]@{
            ContractVersion = $j.contract_version; Engine = $j.engine; EngineVersion = $j.engine_version; RequestDigest = $j.request_digest
            ExitCode = $j.exit_code; Signal = $null; TimedOut = $j.timed_out; StdoutDigest = $j.stdout_digest; StdoutBytes = $j.stdout_bytes
            StdoutTruncated = $false; StderrDigest = $j.stderr_digest; StderrBytes = $j.stderr_bytes; StderrTruncated = $false
            OutputFiles = @($j.output_files | ForEach-Object { [FxFile]@{ Path = $_.path; Digest = $_.digest; Bytes = $_.bytes } })
            InputDigests = @($j.input_digests | ForEach-Object { [FxInput]@{ Path = $_.path; Digest = $_.digest } })
            PolicyDigest = $j.policy_digest
            Sandbox = [FxSandbox]@{ Enforced = $j.sandbox.enforced; NotEnforced = $j.sandbox.not_enforced }
            DeterminismConfidence = [FxConfidence]@{ Level = 'high'; Score = 1.0; Reasons = @() }
            DurationMs = 12; StartedAt = $j.started_at; ResultDigest = $j.result_digest
        }
        $p = $r | New-RequiemProof -Request $Fx.Request -Cas $Cas
        $p.ResultDigest | Should -Be $Fx.ResultDigest
        ($p | Test-RequiemProof -Cas $Cas).Valid | Should -BeTrue
    }

    It 'detects every single-byte change (XOR 1) of the bundle file, with a reason naming what failed' {
        $bytes = [IO.File]::ReadAllBytes($File)
        $tampered = Join-Path $Dir 'tampered.json'
        for ($i = 0; $i -lt $bytes.Length; $i++) {
            $copy = [byte[]]$bytes.Clone()
            $copy[$i] = $copy[$i] -bxor 1
            [IO.File]::WriteAllBytes($tampered, $copy)
            $v = Test-RequiemProof -LiteralPath $tampered -Cas $Cas
            $v.Valid | Should -BeFalse -Because "byte $i was changed"
            $v.Reasons[0] | Should -Match '^(bundle|merkle_root|request_object|replay_transcript_digest|output_digests|policy_digest|input_digests|result_digest|request_digest)\b' -Because "byte $i"
        }
    }

    It 'names the referenced object that was altered in the CAS: <Label>' -ForEach @(
        @{ Label = 'output_digests[0] (stdout)'; Field = 'StdoutDigest' }
        @{ Label = 'policy_digest'; Field = 'PolicyDigest' }
        @{ Label = "output_digests[2] (output file 'out/report.txt')"; Field = 'Out' }
        @{ Label = 'request_object'; Field = 'RequestObject' }
    ) {
        $digest = switch ($Field) { 'Out' { $Fx.OutputDigests[0] } 'RequestObject' { $Proof.Bundle.RequestObject } default { $Fx.$Field } }
        $obj = Join-Path $Cas "objects/$($digest.Substring(0,2))/$digest"
        $saved = [IO.File]::ReadAllBytes($obj)
        try {
            $changed = [byte[]]$saved.Clone(); $changed[-1] = $changed[-1] -bxor 0x20
            [IO.File]::WriteAllBytes($obj, $changed)
            $v = Test-RequiemProof -Path $File -Cas $Cas
            $v.Valid | Should -BeFalse
            $v.Reasons | Should -Contain ($v.Reasons | Where-Object { $_.StartsWith("$Label $digest") -and $_ -match 'corrupt' })
            ($v.Reasons | Where-Object { $_.StartsWith("$Label $digest") }) | Should -Not -BeNullOrEmpty
        }
        finally { [IO.File]::WriteAllBytes($obj, $saved) }
        (Test-RequiemProof -Path $File -Cas $Cas).Valid | Should -BeTrue
    }

    It 'reports a proof verified against a store without its objects as missing objects' {
        { Test-RequiemProof -Path $File -Cas (Join-Path $Dir 'no-such-cas') } | Should -Throw -ErrorId 'CasNotFound,Requiem.PowerShell.TestRequiemProofCommand'
        Test-Path (Join-Path $Dir 'no-such-cas') | Should -BeFalse
        $empty = New-Item -ItemType Directory (Join-Path $Dir 'empty-cas')
        $v = Test-RequiemProof -Path $File -Cas $empty.FullName
        $v.Valid | Should -BeFalse
        $v.Reasons | Where-Object { $_ -match 'missing from the CAS' } | Should -Not -BeNullOrEmpty
    }

    It 'reports -Replay as unavailable when Invoke-RequiemReplay is not installed' {
        # A session that imported the module without the replay cmdlet (Import-Module -Cmdlet), as in a trimmed deployment.
        $out = Invoke-FreshPwsh -Script @"
`$all = (Import-PowerShellDataFile '$ModulePath').CmdletsToExport | Where-Object { `$_ -ne 'Invoke-RequiemReplay' }
Import-Module '$ModulePath' -Cmdlet `$all
[bool](Get-Command Invoke-RequiemReplay -ErrorAction Ignore)
`$v = Test-RequiemProof -Path '$File' -Cas '$Cas' -Replay
`$v.Valid
`$v.Reasons
"@
        $out[0] | Should -Be 'False'
        $out[1] | Should -Be 'False'
        $out | Should -Contain 'replay unavailable: Invoke-RequiemReplay not found'
    }
}

Describe 'Signed proofs (DSSE, ECDSA P-256)' {
    BeforeAll {
        $script:Signed = Join-Path $Dir 'signed.json'
        $script:SignedProof = New-RequiemProof -Request $Fx.Request -Result $Fx.Result -Cas $Cas -OutFile $Signed -SigningKey $Key
        $script:Envelope = Get-Content $Signed -Raw | ConvertFrom-Json
        $script:OtherKey = Join-Path $Dir 'other.pem'
        $script:OtherPub = Join-Path $Dir 'other.pub.pem'
        New-RequiemSigningKey -Path $OtherKey -PublicKeyPath $OtherPub | Out-Null
    }

    It 'writes a standard DSSE envelope whose payload is the bundle' {
        @($Envelope.PSObject.Properties.Name) | Should -Be @('payload', 'payloadType', 'signatures')
        $Envelope.payloadType | Should -Be 'application/vnd.requiem.proof+json'
        $Envelope.signatures.Count | Should -Be 1
        $Envelope.signatures[0].keyid | Should -Be $KeyInfo.KeyId
        $SignedProof.KeyIds | Should -Be @($KeyInfo.KeyId)
        $bundle = [Text.Encoding]::UTF8.GetString([Convert]::FromBase64String($Envelope.payload)) | ConvertFrom-Json
        $bundle.merkle_root | Should -Be $SignedProof.MerkleRoot
        $bundle.signature_stub | Should -Be ''
    }

    It 'verifies with the public key or a trusted-keys file, and not without a key' {
        (Test-RequiemProof -Path $Signed -Cas $Cas -PublicKey $Pub).Valid | Should -BeTrue
        (Test-RequiemProof -Path $Signed -Cas $Cas -PublicKey $Pub).SignatureVerified | Should -BeTrue
        $trusted = Join-Path $Dir 'trusted.json'
        @{ trusted_keys = @(@{ keyid = $SignedProof.KeyIds[0]; name = 'ci'; public_key = (Get-Content $Pub -Raw) }) } | ConvertTo-Json -Depth 4 | Set-Content $trusted
        (Test-RequiemProof -Path $Signed -Cas $Cas -TrustedKeys $trusted).Valid | Should -BeTrue
        $pemBundle = Join-Path $Dir 'trusted.pem'
        (Get-Content $OtherPub -Raw) + (Get-Content $Pub -Raw) | Set-Content $pemBundle
        (Test-RequiemProof -Path $Signed -Cas $Cas -TrustedKeys $pemBundle).Valid | Should -BeTrue
        $v = Test-RequiemProof -Path $Signed -Cas $Cas
        $v.Valid | Should -BeFalse
        $v.Reasons | Should -Contain 'signature: not verified: the proof is signed but no -PublicKey or -TrustedKeys was given'
    }

    It 'verifies an envelope given as a ConvertFrom-Json object through the pipeline (-Bundle)' {
        $v = Get-Content $Signed -Raw | ConvertFrom-Json | Test-RequiemProof -Cas $Cas -PublicKey $Pub
        $v.Valid | Should -BeTrue
        $v.Path | Should -BeNullOrEmpty
        Get-Item $Signed | Test-RequiemProof -Cas $Cas -PublicKey $Pub -Quiet | Should -BeTrue
    }

    It 'rejects the signature when verified with another key' {
        $v = Test-RequiemProof -Path $Signed -Cas $Cas -PublicKey $OtherPub
        $v.Valid | Should -BeFalse
        $v.SignatureVerified | Should -BeFalse
        $v.Reasons[0] | Should -Match '^signature: keyid .* is not a trusted key'
    }

    It 'openssl verifies the signature over the reconstructed PAE, and rejects it with another key' -Skip:(-not (Get-Command openssl -ErrorAction Ignore)) {
        $pae = Get-DssePae -PayloadType $Envelope.payloadType -Payload ([Convert]::FromBase64String($Envelope.payload))
        $paeFile = Join-Path $Dir 'pae.bin'; $sigFile = Join-Path $Dir 'sig.der'
        [IO.File]::WriteAllBytes($paeFile, $pae)
        [IO.File]::WriteAllBytes($sigFile, [Convert]::FromBase64String($Envelope.signatures[0].sig))
        $out = & openssl dgst -sha256 -verify $Pub -signature $sigFile $paeFile 2>&1
        $LASTEXITCODE | Should -Be 0
        "$out" | Should -Be 'Verified OK'
        $out = & openssl dgst -sha256 -verify $OtherPub -signature $sigFile $paeFile 2>&1
        $LASTEXITCODE | Should -Not -Be 0
        "$out" | Should -Match 'Verification failure'
        $pae[-3] = $pae[-3] -bxor 1
        [IO.File]::WriteAllBytes($paeFile, $pae)
        & openssl dgst -sha256 -verify $Pub -signature $sigFile $paeFile 2>&1 | Out-Null
        $LASTEXITCODE | Should -Not -Be 0
    }

    It 'accepts an envelope signed by openssl with the same key (interoperable both ways)' -Skip:(-not (Get-Command openssl -ErrorAction Ignore)) {
        $payload = [Convert]::FromBase64String($Envelope.payload)
        $paeFile = Join-Path $Dir 'pae2.bin'; $sigFile = Join-Path $Dir 'sig2.der'
        [IO.File]::WriteAllBytes($paeFile, (Get-DssePae -PayloadType $Envelope.payloadType -Payload $payload))
        # openssl picks s or n-s at random; the module accepts only the low-S form (ProofSignatures.Tests.ps1), so
        # sign until openssl gives that one.
        $n = [Numerics.BigInteger]::Parse('0FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551', 'HexNumber')
        do {
            & openssl dgst -sha256 -sign $Key -out $sigFile $paeFile
            $LASTEXITCODE | Should -Be 0
            $der = [IO.File]::ReadAllBytes($sigFile)
            $seq = [Formats.Asn1.AsnReader]::new($der, [Formats.Asn1.AsnEncodingRules]::DER).ReadSequence()
            $null = $seq.ReadInteger([Nullable[Formats.Asn1.Asn1Tag]]$null)
        } while ($seq.ReadInteger([Nullable[Formats.Asn1.Asn1Tag]]$null) -gt ($n / 2))
        $sig = [Convert]::ToBase64String($der)
        $file = Join-Path $Dir 'openssl-signed.json'
        $json = '{"payload":"' + $Envelope.payload + '","payloadType":"' + $Envelope.payloadType + '","signatures":[{"keyid":"' + $Envelope.signatures[0].keyid + '","sig":"' + $sig + '"}]}'
        [IO.File]::WriteAllText($file, $json + "`n")
        (Test-RequiemProof -Path $file -Cas $Cas -PublicKey $Pub).Valid | Should -BeTrue
    }

    It 'detects every single-byte change (XOR 1) of the envelope file' {
        $bytes = [IO.File]::ReadAllBytes($Signed)
        $tampered = Join-Path $Dir 'tampered-env.json'
        for ($i = 0; $i -lt $bytes.Length; $i++) {
            $copy = [byte[]]$bytes.Clone()
            $copy[$i] = $copy[$i] -bxor 1
            [IO.File]::WriteAllBytes($tampered, $copy)
            $v = Test-RequiemProof -LiteralPath $tampered -Cas $Cas -PublicKey $Pub
            $v.Valid | Should -BeFalse -Because "byte $i was changed"
        }
    }

    It 'treats a stripped envelope (the bare payload) as unsigned and invalid when a key is given' {
        $bare = Join-Path $Dir 'stripped.json'
        [IO.File]::WriteAllBytes($bare, [Convert]::FromBase64String($Envelope.payload))
        $v = Test-RequiemProof -Path $bare -Cas $Cas -PublicKey $Pub
        $v.Valid | Should -BeFalse
        $v.Reasons | Should -Contain 'signature: the bundle is not signed, but a public key was given (a signed proof is a DSSE envelope)'
        (Test-RequiemProof -Path $bare -Cas $Cas -RequireSignature).Valid | Should -BeFalse
    }
}

Describe 'Typed errors for malformed input' {
    It 'a malformed bundle is a result with a reason; with -FailOnInvalid it is the terminating error ProofInvalid' {
        $bad = Join-Path $Dir 'garbage.json'
        Set-Content $bad '{"merkle_root": nope'
        $v = Test-RequiemProof -Path $bad -Cas $Cas
        $v.Valid | Should -BeFalse
        $v.Reasons[0] | Should -Match '^bundle: not valid JSON'
        { Test-RequiemProof -Path $bad -Cas $Cas -FailOnInvalid } | Should -Throw -ErrorId 'ProofInvalid,Requiem.PowerShell.TestRequiemProofCommand'
        Set-Content $bad '{"merkle_root":"00"}'
        (Test-RequiemProof -Path $bad -Cas $Cas).Reasons | Should -Contain "bundle: missing field 'input_digests'"
    }

    It 'Export-RequiemProof of a malformed bundle fails with InvalidProofBundle' {
        $bad = Join-Path $Dir 'garbage2.json'
        Set-Content $bad '[1,2,3]'
        { Export-RequiemProof -Path $bad -Destination (Join-Path $Dir 'x.tar') -Cas $Cas -ErrorAction Stop } |
            Should -Throw -ErrorId 'InvalidProofBundle,Requiem.PowerShell.ExportRequiemProofCommand'
    }

    It 'malformed keys: <Case>' -ForEach @(
        @{ Case = 'garbage private key'; Text = 'not a key'; Id = 'InvalidSigningKey'; Public = $false }
        @{ Case = 'public key given as private'; Text = 'PUB'; Id = 'InvalidSigningKey'; Public = $false }
        @{ Case = 'private key given as public'; Text = 'PRIV'; Id = 'InvalidPublicKey'; Public = $true }
        @{ Case = 'truncated public key'; Text = "-----BEGIN PUBLIC KEY-----`nMFkwEwYHKoZIzj0CAQ==`n-----END PUBLIC KEY-----"; Id = 'InvalidPublicKey'; Public = $true }
    ) {
        $file = Join-Path $Dir "badkey-$([guid]::NewGuid()).pem"
        $content = switch ($Text) { 'PUB' { Get-Content $Pub -Raw } 'PRIV' { Get-Content $Key -Raw } default { $Text } }
        Set-Content -LiteralPath $file -Value $content
        if ($Public) {
            { Test-RequiemProof -Path (Join-Path $Dir 'proof.json') -Cas $Cas -PublicKey $file } | Should -Throw -ErrorId "$Id,Requiem.PowerShell.TestRequiemProofCommand"
        }
        else {
            { New-RequiemProof -Request $Fx.Request -Result $Fx.Result -Cas $Cas -SigningKey $file } | Should -Throw -ErrorId "$Id,Requiem.PowerShell.NewRequiemProofCommand"
        }
    }

    It 'an RSA or P-384 key made by openssl is refused with InvalidSigningKey' -Skip:(-not (Get-Command openssl -ErrorAction Ignore)) {
        $rsa = Join-Path $Dir 'rsa.pem'; $p384 = Join-Path $Dir 'p384.pem'
        & openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out $rsa 2>$null
        & openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out $p384 2>$null
        foreach ($k in $rsa, $p384) {
            { New-RequiemProof -Request $Fx.Request -Result $Fx.Result -Cas $Cas -SigningKey $k } | Should -Throw -ErrorId 'InvalidSigningKey,Requiem.PowerShell.NewRequiemProofCommand'
        }
        # An openssl-made P-256 key (SEC1 "EC PRIVATE KEY") works.
        $p256 = Join-Path $Dir 'p256.pem'
        & openssl ecparam -name prime256v1 -genkey -noout -out $p256
        (New-RequiemProof -Request $Fx.Request -Result $Fx.Result -Cas $Cas -SigningKey $p256).Signed | Should -BeTrue
    }

    It 'a result whose content does not match its result_digest is ResultDigestMismatch' {
        $h = $Fx.Result | ConvertFrom-Json -AsHashtable
        $h.exit_code = 1
        { New-RequiemProof -Request $Fx.Request -Result $h -Cas $Cas -ErrorAction Stop } | Should -Throw -ErrorId 'ResultDigestMismatch,Requiem.PowerShell.NewRequiemProofCommand'
    }

    It 'a request that did not produce the result is RequestDigestMismatch' {
        $r = $Fx.Request.Clone(); $r.command = '/bin/false'
        { New-RequiemProof -Request $r -Result $Fx.Result -Cas $Cas -ErrorAction Stop } | Should -Throw -ErrorId 'RequestDigestMismatch,Requiem.PowerShell.NewRequiemProofCommand'
    }

    It 'a result whose objects are not in the store is ProofObjectMissing' {
        { New-RequiemProof -Request $Fx.Request -Result $Fx.Result -Cas (Join-Path $Dir 'other-cas') -ErrorAction Stop } | Should -Throw -ErrorId 'ProofObjectMissing,Requiem.PowerShell.NewRequiemProofCommand'
    }

    It 'writes an error for a piped result that cannot be proven and still proves the next one' {
        $bad = $Fx.Result | ConvertFrom-Json -AsHashtable
        $bad.exit_code = 1
        $out = @($bad, $Fx.Result) | New-RequiemProof -Request $Fx.Request -Cas $Cas -ErrorVariable errs -ErrorAction SilentlyContinue
        @($out).Count | Should -Be 1
        $out.MerkleRoot | Should -Match '^[0-9a-f]{64}$'
        @($errs).Count | Should -Be 1
        $errs[0].FullyQualifiedErrorId | Should -Be 'ResultDigestMismatch,Requiem.PowerShell.NewRequiemProofCommand'
    }
}

Describe 'Portable archive (Export-RequiemProof / Import-RequiemProof)' {
    BeforeAll {
        $script:ArchiveProof = New-RequiemProof -Request $Fx.Request -Result $Fx.Result -Cas $Cas -SigningKey $Key -OutFile (Join-Path $Dir 'arch.json')
        $script:Archive = Join-Path $Dir 'proof.tar'
        $script:Exported = Export-RequiemProof -Path (Join-Path $Dir 'arch.json') -Destination $Archive -Cas $Cas
    }

    It 'is a plain tar whose objects standard tools verify (b3sum of "cas:" + bytes = file name)' -Skip:(-not (Get-Command tar -ErrorAction Ignore)) {
        $Exported.ObjectCount | Should -Be 7
        $names = & tar -tf $Archive
        $names | Should -Contain 'manifest.json'
        $names | Should -Contain 'proof.json'
        $x = Join-Path $Dir 'extracted'
        New-Item -ItemType Directory $x | Out-Null
        & tar -xf $Archive -C $x
        [IO.File]::ReadAllText((Join-Path $x 'proof.json')) | Should -Be ([IO.File]::ReadAllText((Join-Path $Dir 'arch.json')))
        $objects = Get-ChildItem (Join-Path $x 'objects') -File
        $objects.Count | Should -Be 7
        foreach ($o in $objects) {
            $bytes = [byte[]]([Text.Encoding]::ASCII.GetBytes('cas:') + [IO.File]::ReadAllBytes($o.FullName))
            [Convert]::ToHexString((Get-Blake3 $bytes)).ToLowerInvariant() | Should -Be $o.Name
        }
        # Re-packed by GNU tar (with ./ names and directory entries), it still imports and verifies.
        $repacked = Join-Path $Dir 'repacked.tar'
        & tar -cf $repacked -C $x .
        $fresh = Join-Path $Dir 'repacked-cas'
        (Import-RequiemProof -LiteralPath $repacked -Cas $fresh | Test-RequiemProof -Cas $fresh -PublicKey $Pub).Valid | Should -BeTrue
    }

    It 'verifies with standard tools only (examples/verify-proof-by-hand.sh: tar, b3sum, openssl, jq)' -Skip:(-not ((Get-Command bash, jq, b3sum, openssl, tar -ErrorAction Ignore).Count -eq 5)) {
        $script = Join-Path $RepoRoot 'examples/verify-proof-by-hand.sh'
        $out = & bash $script $Archive $Pub 2>&1
        $LASTEXITCODE | Should -Be 0 -Because ($out -join "`n")
        $out | Should -Contain 'ok: Merkle root recomputed'
        $out[-1] | Should -Be "VERIFIED $($ArchiveProof.MerkleRoot)"
        # Unsigned proofs too.
        $unsignedTar = Join-Path $Dir 'unsigned.tar'
        Export-RequiemProof -Path (Join-Path $Dir 'proof.json') -Destination $unsignedTar -Cas $Cas | Out-Null
        & bash $script $unsignedTar 2>&1 | Select-Object -Last 1 | Should -BeLike 'VERIFIED *'
        # With another key, openssl refuses.
        $other = Join-Path $Dir 'k-other.pem'
        $o = New-RequiemSigningKey -Path $other
        & bash $script $Archive $o.PublicKeyPath 2>&1 | Select-Object -Last 1 | Should -Be 'FAIL: signature does not verify'
        $LASTEXITCODE | Should -Not -Be 0
    }

    It 'imports into a fresh store, where the proof verifies' {
        $fresh = Join-Path $Dir 'fresh-cas'
        $imported = Import-RequiemProof -Path $Archive -Cas $fresh
        $imported.MerkleRoot | Should -Be $ArchiveProof.MerkleRoot
        $imported.Signed | Should -BeTrue
        $v = Test-RequiemProof -MerkleRoot $imported.MerkleRoot -Cas $fresh -PublicKey $Pub
        $v.Valid | Should -BeTrue
        $v.ObjectsChecked | Should -Be 7
        (Test-RequiemProof -Path (Join-Path $Dir 'arch.json') -Cas $fresh -PublicKey $Pub).Valid | Should -BeTrue
        # And in a fresh process, as a third party would.
        $out = Invoke-FreshPwsh "Import-Module '$ModulePath'; (Test-RequiemProof -MerkleRoot $($imported.MerkleRoot) -Cas '$fresh' -PublicKey '$Pub' -Quiet)"
        @($out)[-1] | Should -Be 'True'
    }

    It 'pipes New-RequiemProof output into Export-RequiemProof (by MerkleRoot) and refuses to overwrite without -Force' {
        $dest = Join-Path $Dir 'outdir'
        New-Item -ItemType Directory $dest | Out-Null
        $e = $ArchiveProof | Export-RequiemProof -Destination $dest -Cas $Cas
        $e.Path | Should -Be (Join-Path $dest "$($ArchiveProof.MerkleRoot).proof.tar")
        { $ArchiveProof | Export-RequiemProof -Destination $dest -Cas $Cas -ErrorAction Stop } | Should -Throw -ErrorId 'ArchiveExists,Requiem.PowerShell.ExportRequiemProofCommand'
        ($ArchiveProof | Export-RequiemProof -Destination $dest -Cas $Cas -Force).ObjectCount | Should -Be 7
    }

    It 'refuses to let a second piped proof replace the first in one archive file, even with -Force' {
        $fx2 = New-ProofFixture -Cas $Cas -Stdout "second`n" -Seed 2
        $second = New-RequiemProof -Request $fx2.Request -Result $fx2.Result -Cas $Cas
        $second.MerkleRoot | Should -Not -Be $ArchiveProof.MerkleRoot
        $one = Join-Path $Dir 'one.proof.tar'
        $out = $ArchiveProof, $second | Export-RequiemProof -Destination $one -Cas $Cas -Force -ErrorVariable errs -ErrorAction SilentlyContinue
        @($out).Count | Should -Be 1
        $errs[0].FullyQualifiedErrorId | Should -Be 'DestinationReused,Requiem.PowerShell.ExportRequiemProofCommand'
        (Import-RequiemProof -Path $one -Cas (Join-Path $Dir 'reuse-cas')).MerkleRoot | Should -Be $ArchiveProof.MerkleRoot
    }

    It 'refuses an archive that carries an object the proof does not reference, and imports nothing (issue 11.4)' -Skip:(-not (Get-Command tar -ErrorAction Ignore)) {
        $x = Join-Path $Dir 'extra-extracted'
        New-Item -ItemType Directory $x | Out-Null
        & tar -xf $Archive -C $x
        # Smuggle in a crafted object, listed in manifest.json too, so the archive is otherwise self-consistent.
        $crafted = '{"kind":5,"requiem_manifest":"1"}'
        $name = (Get-RequiemDigest -InputObject $crafted -Domain Cas).Hash
        [IO.File]::WriteAllText((Join-Path $x "objects/$name"), $crafted)
        $m = Get-Content -Raw (Join-Path $x 'manifest.json') | ConvertFrom-Json
        $m.objects += [pscustomobject]@{ bytes = $crafted.Length; digest = $name; path = "objects/$name" }
        [IO.File]::WriteAllText((Join-Path $x 'manifest.json'), ($m | ConvertTo-Json -Depth 5 -Compress))
        $smuggled = Join-Path $Dir 'smuggled.tar'
        & tar -cf $smuggled -C $x manifest.json proof.json objects
        $fresh = Join-Path $Dir 'smuggled-cas'
        $err = $null
        try { Import-RequiemProof -Path $smuggled -Cas $fresh -ErrorAction Stop } catch { $err = $_ }
        $err.FullyQualifiedErrorId | Should -Be 'InvalidProofArchive,Requiem.PowerShell.ImportRequiemProofCommand'
        $err.Exception.Message | Should -Match "does not reference \($name\)"
        Test-Path (Join-Path $fresh "objects/$($name.Substring(0, 2))/$name") | Should -BeFalse
        Test-Path (Join-Path $fresh "refs/proofs/$($ArchiveProof.MerkleRoot)") | Should -BeFalse
        # The untouched archive still imports.
        (Import-RequiemProof -Path $Archive -Cas $fresh).MerkleRoot | Should -Be $ArchiveProof.MerkleRoot
    }

    It 'refuses an archive with a corrupted object and imports nothing' {
        $bytes = [IO.File]::ReadAllBytes($Archive)
        $needle = [Text.Encoding]::UTF8.GetBytes("report`n")
        $at = -1
        for ($i = 0; $i -le $bytes.Length - $needle.Length -and $at -lt 0; $i++) {
            $hit = $true
            for ($j = 0; $j -lt $needle.Length; $j++) { if ($bytes[$i + $j] -ne $needle[$j]) { $hit = $false; break } }
            if ($hit) { $at = $i }
        }
        $at | Should -BeGreaterThan 0
        $bytes[$at] = $bytes[$at] -bxor 1
        $bad = Join-Path $Dir 'bad.tar'
        [IO.File]::WriteAllBytes($bad, $bytes)
        $fresh = Join-Path $Dir 'fresh-cas-2'
        { Import-RequiemProof -Path $bad -Cas $fresh -ErrorAction Stop } | Should -Throw -ErrorId 'ArchiveObjectCorrupt,Requiem.PowerShell.ImportRequiemProofCommand'
        Test-Path (Join-Path $fresh "refs/proofs/$($ArchiveProof.MerkleRoot)") | Should -BeFalse
    }
}

Describe 'With the exec engine' {
    It 'proves a real Invoke-RequiemExec run and -Replay re-executes it' -Skip:(-not (Get-Command Invoke-RequiemExec -ErrorAction Ignore)) {
        $ws = New-TestDirectory
        $execCas = Join-Path $Dir 'exec-cas'
        $saved = $env:REQUIEM_CAS
        $env:REQUIEM_CAS = $execCas
        try {
            $request = @{ command = '/bin/echo'; argv = @('hi'); workspace_root = $ws }
            $result = Invoke-RequiemExec -Request $request
            $file = Join-Path $Dir 'exec-proof.json'
            $proof = $result | New-RequiemProof -Request $request -OutFile $file -SigningKey $Key
            $proof.ResultDigest | Should -Be $result.ResultDigest
            $v = Test-RequiemProof -Path $file -PublicKey $Pub
            $v.Valid | Should -BeTrue
            if (Get-Command Invoke-RequiemReplay -ErrorAction Ignore) {
                $r = Test-RequiemProof -Path $file -PublicKey $Pub -Replay
                $r.Replayed | Should -BeTrue
                $r.Valid | Should -BeTrue -Because ($r.Reasons -join '; ')
            }
        }
        finally { $env:REQUIEM_CAS = $saved; Remove-Item -Recurse -Force $ws -ErrorAction Ignore }
    }

    It 'reports a replay mismatch for a command whose output changes' -Skip:(-not (Get-Command Invoke-RequiemReplay -ErrorAction Ignore)) {
        $ws = New-TestDirectory
        $saved = $env:REQUIEM_CAS
        $env:REQUIEM_CAS = Join-Path $Dir 'exec-cas-2'
        try {
            $request = @{ command = '/bin/sh'; argv = @('-c', 'date +%s%N'); workspace_root = $ws }
            $file = Join-Path $Dir 'exec-proof-2.json'
            Invoke-RequiemExec -Request $request | New-RequiemProof -Request $request -OutFile $file | Out-Null
            (Test-RequiemProof -Path $file).Valid | Should -BeTrue
            $r = Test-RequiemProof -Path $file -Replay
            $r.Replayed | Should -BeTrue
            $r.Valid | Should -BeFalse
            $r.Reasons[0] | Should -BeLike 'replay: re-execution does not match the recorded result*'
        }
        finally { $env:REQUIEM_CAS = $saved; Remove-Item -Recurse -Force $ws -ErrorAction Ignore }
    }
}
