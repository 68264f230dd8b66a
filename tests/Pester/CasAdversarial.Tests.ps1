# Attacks on the CAS from the adversarial review (issue 11) and the CAS items of issue 10, each reproduced against
# the built module: the store must keep what is referenced, report what is wrong, and never throw anything untyped.
BeforeAll {
    . (Join-Path $PSScriptRoot 'TestSetup.ps1')
    $script:Dir = New-TestDirectory

    function script:New-Store { Join-Path $script:Dir ('cas-' + [guid]::NewGuid().ToString('n').Substring(0, 8)) }

    function script:New-Workspace {
        $ws = Join-Path $script:Dir ('ws-' + [guid]::NewGuid().ToString('n').Substring(0, 8))
        New-Item -ItemType Directory $ws | Out-Null
        $ws
    }

    function script:Get-ErrorId {
        param([scriptblock] $Script)
        try { & $Script | Out-Null; return '<no error>' } catch { return $_.FullyQualifiedErrorId }
    }

    function script:Set-ObjectsOld {
        # Ages every object file past the default 14-day grace period.
        param([string] $Store)
        $old = (Get-Date).ToUniversalTime().AddDays(-30)
        foreach ($f in [IO.Directory]::EnumerateFiles((Join-Path $Store 'objects'), '*', 'AllDirectories')) { [IO.File]::SetLastWriteTimeUtc($f, $old) }
    }

    function script:Get-ObjectFile {
        param([string] $Store, [string] $Hash)
        Join-Path $Store "objects/$($Hash.Substring(0, 2))/$Hash"
    }
}
AfterAll { try { [IO.Directory]::Delete($script:Dir, $true) } catch { Remove-Item -Recurse -Force $script:Dir -ErrorAction Ignore } }   # fast for 60,000 files

Describe 'A manifest of any size keeps what it references (issue 11.3)' {
    It 'keeps all 6,001 outputs of a run whose manifest is over 16 MiB through GC, and verification notices one that is gone' {
        $store = New-Store
        $ws = New-Workspace
        # 11 folder levels of 250 characters: every output path is ~2,760 characters, so the manifest passes 16 MiB.
        $deep = (1..11 | ForEach-Object { ([string][char](96 + $_)) * 250 }) -join '/'
        $script = "mkdir -p out/$deep && cd out/$deep && i=1; while [ `$i -le 6001 ]; do echo `"output `$i`" > f`$i; i=`$((i+1)); done"
        $request = @{ command = '/bin/sh'; argv = @('-c', $script); workspace_root = $ws; outputs = @('out'); timeout_ms = 120000 }
        $result = Invoke-RequiemExec -Request $request -Cas $store
        $result.ExitCode | Should -Be 0
        $result.OutputFiles.Count | Should -Be 6001
        (Get-RequiemCasObject -Cas $store -Hash $result.ManifestDigest).Size | Should -BeGreaterThan 16MB

        Set-ObjectsOld $store
        $gc = Optimize-RequiemCas -Cas $store -Force
        @($gc.Candidates | Where-Object Kind -eq 'Object').Count | Should -Be 0 -Because 'every output is referenced by the manifest the ref names'
        $gc.Missing.Count | Should -Be 0
        $lost = 0
        foreach ($f in $result.OutputFiles) { if (-not [IO.File]::Exists((Join-Path $store "objects/$($f.Digest.Substring(0, 2))/$($f.Digest)"))) { $lost++ } }
        $lost | Should -Be 0

        $ok = Test-RequiemCas -All -Cas $store
        $ok.Valid | Should -BeTrue
        $ok.Missing.Count | Should -Be 0

        # An object the big manifest names is removed behind the store's back: verification must say so.
        $victim = $result.OutputFiles[4321].Digest
        Remove-Item -LiteralPath (Get-ObjectFile $store $victim)
        $bad = Test-RequiemCas -All -Cas $store
        $bad.Valid | Should -BeFalse
        $bad.Missing.Hash | Should -Be $victim
        $bad.Missing.ReferencedBy | Should -Be "manifest:$($result.ManifestDigest)"
        Test-RequiemCas -All -Cas $store -Quiet | Should -BeFalse
    }
}

Describe 'One crafted object cannot break verification or GC (issue 11.4)' {
    BeforeAll {
        $script:Crafted = '{"kind":5,"requiem_manifest":"1"}'
    }

    It 'treats an output whose bytes look like a broken manifest as data: verification and GC work and keep it' {
        $store = New-Store
        $ws = New-Workspace
        $request = @{ command = '/bin/sh'; argv = @('-c', "printf '%s' '$Crafted' > o.json"); workspace_root = $ws; outputs = @('o.json') }
        $result = Invoke-RequiemExec -Request $request -Cas $store
        $craftedHash = $result.OutputFiles[0].Digest
        (Export-RequiemCasObject -Cas $store -Hash $craftedHash -Raw) | Should -Be $Crafted
        Set-ObjectsOld $store

        $v = Test-RequiemCas -All -Cas $store
        $v.Valid | Should -BeTrue
        $v.InvalidManifests.Count | Should -Be 0
        $gc = Optimize-RequiemCas -Cas $store -Force
        $gc.RemovedCount | Should -Be 0
        Test-Path -LiteralPath (Get-ObjectFile $store $craftedHash) | Should -BeTrue
    }

    It 'reports a ref that names a malformed manifest as a finding with its hash; GC stops with a typed error and removes nothing' {
        $store = New-Store
        $o = Add-RequiemCasObject -Cas $store -InputObject $Crafted
        $garbage = Add-RequiemCasObject -Cas $store -InputObject 'old and unreferenced'
        Set-RequiemCasRef -Cas $store -Name 'results/crafted' -Hash $o.Hash
        Set-ObjectsOld $store

        $v = Test-RequiemCas -All -Cas $store
        $v.Valid | Should -BeFalse
        $v.InvalidManifests.Hash | Should -Be $o.Hash
        $v.InvalidManifests.ReferencedBy | Should -Be 'ref:results/crafted'
        $v.InvalidManifests.Reason | Should -Match 'kind'
        $v.Corrupt.Count | Should -Be 0

        Get-ErrorId { Optimize-RequiemCas -Cas $store -Force -ErrorAction Stop } | Should -Be 'CasGcAborted,Requiem.PowerShell.OptimizeRequiemCasCommand'
        Test-Path -LiteralPath $garbage.ObjectPath | Should -BeTrue
    }

    It 'fails the -FailOnInvalid gate with CasInvalid and reports the manifest in CI when it is the only problem' {
        $store = New-Store
        $o = Add-RequiemCasObject -Cas $store -InputObject $Crafted
        Set-RequiemCasRef -Cas $store -Name 'results/crafted' -Hash $o.Hash
        $err = $null
        try { Test-RequiemCas -All -Cas $store -FailOnInvalid -ErrorAction Stop | Out-Null } catch { $err = $_ }
        $err.FullyQualifiedErrorId | Should -Be 'CasInvalid,Requiem.PowerShell.TestRequiemCasCommand'
        $err.Exception.Message | Should -Match "1 invalid manifest\(s\).*first invalid manifest: $($o.Hash)"

        $summary = Join-Path $Dir 'summary.md'; $outputs = Join-Path $Dir 'outputs.txt'
        $saved = @{ GITHUB_ACTIONS = $env:GITHUB_ACTIONS; GITHUB_STEP_SUMMARY = $env:GITHUB_STEP_SUMMARY; GITHUB_OUTPUT = $env:GITHUB_OUTPUT }
        try {
            $env:GITHUB_ACTIONS = 'true'; $env:GITHUB_STEP_SUMMARY = $summary; $env:GITHUB_OUTPUT = $outputs
            $lines = Test-RequiemCas -All -Cas $store | Write-RequiemCiReport 6>&1 | Out-String
        }
        finally { foreach ($k in $saved.Keys) { Set-Item "env:$k" -Value $saved[$k] -ErrorAction Ignore; if ($null -eq $saved[$k]) { Remove-Item "env:$k" -ErrorAction Ignore } } }
        $lines | Should -Match "::error.*Invalid CAS manifest(:|%3A) $($o.Hash)"
        Get-Content -Raw $summary | Should -Match "$($o.Hash) \| :x: invalid manifest"
        Get-Content -Raw $outputs | Should -Match "cas_invalid_manifests<<"
    }

    It 'does not read an unreferenced object as a manifest, whatever it says' {
        $store = New-Store
        $kept = Add-RequiemCasObject -Cas $store -InputObject 'would be kept only if the fake manifest were believed'
        Add-RequiemCasObject -Cas $store -InputObject ('{"kind":"x","references":["' + $kept.Hash + '"],"requiem_manifest":"1"}') | Out-Null
        Add-RequiemCasObject -Cas $store -InputObject $Crafted | Out-Null
        Set-ObjectsOld $store
        (Test-RequiemCas -All -Cas $store).Valid | Should -BeTrue
        $gc = Optimize-RequiemCas -Cas $store -Force
        $gc.RemovedCount | Should -Be 3
    }
}

Describe 'The repair the error messages advise works (issue 11.6)' {
    It 'GC stops on a corrupt manifest; following its advice (Test-RequiemCas -All, then Add-RequiemCasObject with the original bytes) repairs it and GC runs' {
        $store = New-Store
        $leaf = Add-RequiemCasObject -Cas $store -InputObject 'kept by the manifest'
        $text = '{"kind":"test","references":["' + $leaf.Hash + '"],"requiem_manifest":"1"}'
        $m = Add-RequiemCasObject -Cas $store -InputObject $text
        Set-RequiemCasRef -Cas $store -Name 'results/m' -Hash $m.Hash
        Set-ObjectsOld $store
        # Same-length corruption: one byte changed, size unchanged.
        $bytes = [IO.File]::ReadAllBytes($m.ObjectPath); $bytes[20] = $bytes[20] -bxor 0x01; [IO.File]::WriteAllBytes($m.ObjectPath, $bytes)

        $err = $null
        try { Optimize-RequiemCas -Cas $store -Force -ErrorAction Stop } catch { $err = $_ }
        $err.FullyQualifiedErrorId | Should -Be 'CasGcAborted,Requiem.PowerShell.OptimizeRequiemCasCommand'
        $err.Exception.Message | Should -Match 'Run Test-RequiemCas -All, restore the object \(Add-RequiemCasObject with the original bytes\), then retry'

        $v = Test-RequiemCas -All -Cas $store
        $v.Corrupt.Hash | Should -Be $m.Hash
        $again = Add-RequiemCasObject -Cas $store -InputObject $text
        $again.Hash | Should -Be $m.Hash
        $again.Existed | Should -BeFalse -Because 'the damaged file was replaced, not deduplicated against'
        (Get-RequiemCasObject -Cas $store -Hash $m.Hash).Verified | Should -BeTrue
        (Test-RequiemCas -All -Cas $store).Valid | Should -BeTrue
        $gc = Optimize-RequiemCas -Cas $store -Force
        $gc.RemovedCount | Should -Be 0
        Test-Path -LiteralPath $leaf.ObjectPath | Should -BeTrue
        # Healthy objects still deduplicate.
        (Add-RequiemCasObject -Cas $store -InputObject $text).Existed | Should -BeTrue
    }

    It 'a read that finds an object corrupt says how to repair it, and that repair works (identity, zstd, and in a pipeline batch)' {
        $store = New-Store
        $src = Join-Path $Dir ('heal-' + [guid]::NewGuid().ToString('n'))
        New-Item -ItemType Directory $src | Out-Null
        $files = 1..3 | ForEach-Object {
            $p = Join-Path $src "f$_.txt"
            [IO.File]::WriteAllText($p, ("line $_ of a small file that compresses well`n" * 400))
            Get-Item $p
        }
        $plain = Add-RequiemCasObject -Cas $store -LiteralPath $files[0].FullName -Compress None
        $packed = Add-RequiemCasObject -Cas $store -LiteralPath $files[1].FullName -Compress Zstd
        $batched = Add-RequiemCasObject -Cas $store -LiteralPath $files[2].FullName -Compress None
        $packed.Encoding | Should -Be 'Zstd'
        foreach ($o in $plain, $packed, $batched) {
            $b = [IO.File]::ReadAllBytes($o.ObjectPath); $b[$b.Length - 3] = $b[$b.Length - 3] -bxor 0x20; [IO.File]::WriteAllBytes($o.ObjectPath, $b)
        }
        foreach ($o in $plain, $packed) {
            $err = $null
            try { Get-RequiemCasObject -Cas $store -Hash $o.Hash -ErrorAction Stop } catch { $err = $_ }
            $err.FullyQualifiedErrorId | Should -Be 'CasObjectCorrupt,Requiem.PowerShell.GetRequiemCasObjectCommand'
            $err.Exception.Message | Should -Match 'add the original bytes again \(Add-RequiemCasObject\)'
        }
        (Add-RequiemCasObject -Cas $store -LiteralPath $files[0].FullName).Existed | Should -BeFalse
        # The zstd object comes back as identity here; the damaged .zst file must not shadow or linger.
        (Add-RequiemCasObject -Cas $store -LiteralPath $files[1].FullName -Compress None).Existed | Should -BeFalse
        Test-Path -LiteralPath $packed.ObjectPath | Should -BeFalse
        # Found corrupt by verification, repaired through a pipeline (one write batch).
        (Test-RequiemCas -All -Cas $store).Corrupt.Hash | Should -Be $batched.Hash
        $r = $files | Add-RequiemCasObject -Cas $store
        ($r | Where-Object Hash -eq $batched.Hash).Existed | Should -BeFalse
        foreach ($i in 0..2) {
            $h = @($plain, $packed, $batched)[$i].Hash
            Export-RequiemCasObject -Cas $store -Hash $h -Raw | Should -Be ([IO.File]::ReadAllText($files[$i].FullName))
        }
        (Test-RequiemCas -All -Cas $store).Valid | Should -BeTrue
    }
}

Describe 'Damaged objects are moved to quarantine/, not left under objects/' {
    It 'a read moves the damaged file out, names it in the error, -All keeps reporting it until the bytes are added again' {
        $store = New-Store
        $o = Add-RequiemCasObject -Cas $store -InputObject 'quarantine me'
        Set-RequiemCasRef -Cas $store -Name 'results/q' -Hash $o.Hash
        [IO.File]::WriteAllText($o.ObjectPath, 'QUARANTINE ME')

        $err = $null
        try { Export-RequiemCasObject -Cas $store -Hash $o.Hash -Raw -ErrorAction Stop } catch { $err = $_ }
        $err.FullyQualifiedErrorId | Should -Be 'CasObjectCorrupt,Requiem.PowerShell.ExportRequiemCasObjectCommand'
        Test-Path -LiteralPath $o.ObjectPath | Should -BeFalse -Because 'no later read or put may meet the damaged file'
        $moved = @(Get-ChildItem -LiteralPath (Join-Path $store 'quarantine') -File)
        $moved.Count | Should -Be 1
        $moved[0].Name | Should -BeLike "$($o.Hash).*"
        [IO.File]::ReadAllText($moved[0].FullName) | Should -Be 'QUARANTINE ME' -Because 'the evidence is kept'
        $err.Exception.Message | Should -BeLike "*moved to '$($moved[0].FullName)'*"
        Test-Path -LiteralPath (Join-Path $store 'corrupt') | Should -BeFalse

        # Still corrupt for a read and for every -All check (not also "missing" for its ref) until repaired.
        $again = $null
        try { Get-RequiemCasObject -Cas $store -Hash $o.Hash -ErrorAction Stop } catch { $again = $_ }
        $again.FullyQualifiedErrorId | Should -Be 'CasObjectCorrupt,Requiem.PowerShell.GetRequiemCasObjectCommand'
        $v = Test-RequiemCas -All -Cas $store
        $v.Valid | Should -BeFalse
        $v.Corrupt.Hash | Should -Be $o.Hash
        $v.Corrupt[0].QuarantinePath | Should -Be $moved[0].FullName
        $v.Missing | Should -BeNullOrEmpty

        (Add-RequiemCasObject -Cas $store -InputObject 'quarantine me').Existed | Should -BeFalse
        (Test-RequiemCas -All -Cas $store).Valid | Should -BeTrue
        Export-RequiemCasObject -Cas $store -Hash $o.Hash -Raw | Should -Be 'quarantine me'
    }
}

Describe 'Large output trees stay within the descriptor limit (issue 11.7)' {
    It 'stores 25,000 outputs of one run, and Add-RequiemCasObject stores the same files' {
        $store = New-Store
        $ws = New-Workspace
        $script = 'mkdir -p out && cd out && i=1; while [ $i -le 25000 ]; do echo "output $i" > f$i; i=$((i+1)); done'
        $request = @{ command = '/bin/sh'; argv = @('-c', $script); workspace_root = $ws; outputs = @('out'); timeout_ms = 300000 }
        $result = Invoke-RequiemExec -Request $request -Cas $store -ErrorAction Stop
        $result.ExitCode | Should -Be 0
        $result.OutputFiles.Count | Should -Be 25000
        $v = Test-RequiemCas -All -Cas $store
        $v.Valid | Should -BeTrue
        $v.TempFiles.Count | Should -Be 0
        $v.Checked | Should -BeGreaterOrEqual 25000

        $other = New-Store
        $errs = $null
        $added = Get-ChildItem (Join-Path $ws 'out') -File | Add-RequiemCasObject -Cas $other -ErrorVariable errs -ErrorAction SilentlyContinue
        $errs.Count | Should -Be 0
        @($added).Count | Should -Be 25000
        (Test-RequiemCas -All -Cas $other).Checked | Should -Be 25000
    }

    It 'works in a process whose descriptor limit (256) is far below the number of outputs' -Skip:(-not (Test-Path /bin/bash)) {
        $store = New-Store
        $ws = New-Workspace
        $child = Join-Path $Dir 'lowlimit.ps1'
        Set-Content -LiteralPath $child -Value @'
param($ModulePath, $Cas, $Ws)
$ErrorActionPreference = 'Stop'
Import-Module $ModulePath
$limit = (Get-Content /proc/self/limits | Select-String 'Max open files').Line -split '\s+'
$script = 'mkdir -p out && cd out && i=1; while [ $i -le 3000 ]; do echo "output $i" > f$i; i=$((i+1)); done'
$r = Invoke-RequiemExec -Request @{ command = '/bin/sh'; argv = @('-c', $script); workspace_root = $Ws; outputs = @('out'); timeout_ms = 120000 } -Cas $Cas
$a = Get-ChildItem (Join-Path $Ws 'out') -File | Add-RequiemCasObject -Cas "$Cas-add"
"$($limit[3]) $($r.OutputFiles.Count) $(@($a).Count) $((Test-RequiemCas -All -Cas $Cas).Valid)"
'@
        $out = & /bin/bash -c 'ulimit -n 256 && exec "$0" -NoProfile -NonInteractive -File "$1" "$2" "$3" "$4" 2>&1' $Pwsh $child $ModulePath $store $ws
        $LASTEXITCODE | Should -Be 0 -Because ($out -join "`n")
        @($out)[-1] | Should -Be '256 3000 3000 True'
    }
}

Describe 'A store whose initialisation fails leaves nothing behind (issue 11.10)' {
    BeforeAll {
        $script:Mount = Join-Path $Dir 'full-tmpfs'
        New-Item -ItemType Directory $Mount | Out-Null
        $script:Mounted = $false
        $script:MountError = ''
        if (-not $IsLinux) { $script:MountError = 'tmpfs mounts need Linux' }
        else {
            $msg = & mount -t tmpfs -o size=64k requiem-test-init $Mount 2>&1
            if ($LASTEXITCODE -eq 0) { $script:Mounted = $true } else { $script:MountError = "mount -t tmpfs failed (not root or no CAP_SYS_ADMIN): $msg" }
        }
    }
    AfterAll { if ($Mounted) { & umount $Mount } }

    It 'reports CasDiskFull and leaves no config.*.tmp on a full disk; the folder becomes a store once there is room' {
        if (-not $Mounted) { Set-ItResult -Skipped -Because $MountError; return }
        $fill = Join-Path $Mount 'fill'
        & dd if=/dev/zero "of=$fill" bs=4k 2>$null
        $store = Join-Path $Mount 'store'
        $err = $null
        try { Add-RequiemCasObject -Cas $store -InputObject 'x' -ErrorAction Stop } catch { $err = $_ }
        $err.FullyQualifiedErrorId | Should -Be 'CasDiskFull,Requiem.PowerShell.AddRequiemCasObjectCommand'
        @(Get-ChildItem -LiteralPath $store -Force -Recurse -ErrorAction Ignore | Where-Object Name -like '*.tmp').Count | Should -Be 0
        Test-Path -LiteralPath (Join-Path $store 'config') | Should -BeFalse

        Remove-Item -LiteralPath $fill
        (Add-RequiemCasObject -Cas $store -InputObject 'x').Existed | Should -BeFalse
        Test-Path -LiteralPath (Join-Path $store 'config') | Should -BeTrue
    }
}

Describe 'Honest hash fallback in the CAS (issue 10)' {
    It 'a BLAKE3 store refuses a session that hashes with the SHA-256 fallback; a fallback store marks its objects SHA256' {
        $b3 = New-Store
        $blake = Add-RequiemCasObject -Cas $b3 -InputObject 'hello'
        $blake.Algorithm | Should -Be 'BLAKE3'
        $fallbackStore = New-Store
        $ws = New-Workspace
        $config = Join-Path $Dir 'allow-fallback.json'
        Set-Content -LiteralPath $config -Value '{"config_version":"1.1","hash":{"allow_fallback":true}}'
        $vars = @{ REQUIEM_SIMULATE_BLAKE3_FAILURE = '1'; REQUIEM_CONFIG = $config }
        $out = Invoke-FreshPwsh -AllowFailure -Environment $vars -Script @"
Import-Module '$ModulePath'
try { Add-RequiemCasObject -Cas '$b3' -InputObject 'written with the fallback' -ErrorAction Stop; 'NO-ERROR' } catch { `$_.FullyQualifiedErrorId; `$_.Exception.Message }
try { Invoke-RequiemExec -Cas '$b3' -Request @{ command = '/bin/echo'; argv = @('x'); workspace_root = '$ws' } -ErrorAction Stop | Out-Null; 'NO-ERROR' } catch { `$_.FullyQualifiedErrorId }
try { Test-RequiemCas -All -Cas '$b3' -ErrorAction Stop | Out-Null; 'NO-ERROR' } catch { `$_.FullyQualifiedErrorId }
`$o = Add-RequiemCasObject -Cas '$fallbackStore' -InputObject 'hello'
`$o.Algorithm; `$o.Hash
(Get-RequiemCasObject -Cas '$fallbackStore' -Hash `$o.Hash).Algorithm
(Test-RequiemCas -All -Cas '$fallbackStore').Valid
"@
        $out[0] | Should -Be 'CasAlgorithmMismatch,Requiem.PowerShell.AddRequiemCasObjectCommand'
        $out[1] | Should -Match 'created for blake3 object names, but this session hashes with the SHA-256 fallback'
        $out[2] | Should -Be 'CasAlgorithmMismatch,Requiem.PowerShell.InvokeRequiemExecCommand'
        $out[3] | Should -Be 'CasAlgorithmMismatch,Requiem.PowerShell.TestRequiemCasCommand'
        $out[4] | Should -Be 'SHA256'
        $out[5] | Should -Be ([Convert]::ToHexString([Security.Cryptography.SHA256]::HashData([Text.Encoding]::ASCII.GetBytes('cas:hello'))).ToLowerInvariant())
        $out[6] | Should -Be 'SHA256'
        $out[7] | Should -Be 'True'
        @(Get-ChildItem -Recurse -File (Join-Path $b3 'objects')).Count | Should -Be 1 -Because 'nothing was written into the BLAKE3 store'
        (Get-Content -Raw (Join-Path $fallbackStore 'config') | ConvertFrom-Json).hash | Should -Be 'sha256'
        (Get-Content -Raw (Join-Path $b3 'config') | ConvertFrom-Json).hash | Should -Be 'blake3'
        # And the other way round: a BLAKE3 session refuses the fallback store.
        Get-ErrorId { Add-RequiemCasObject -Cas $fallbackStore -InputObject 'x' -ErrorAction Stop } | Should -Be 'CasAlgorithmMismatch,Requiem.PowerShell.AddRequiemCasObjectCommand'
    }
}

Describe 'Zstd only when it helps (issue 10)' {
    It 'stores random bytes raw when zstd is asked for, small (<Size>) or streamed, and says what it stored' -ForEach @(
        @{ Size = 3000000 }, @{ Size = 6000000 }
    ) {
        $store = New-Store
        $file = Join-Path $Dir ("random-$Size-" + [guid]::NewGuid().ToString('n') + '.bin')
        $bytes = [byte[]]::new($Size); [Random]::new($Size).NextBytes($bytes); [IO.File]::WriteAllBytes($file, $bytes)
        $r = Add-RequiemCasObject -Cas $store -LiteralPath $file -Compress Zstd
        $r.Encoding | Should -Be 'Identity'
        $r.StoredSize | Should -Be $Size
        $r.ObjectPath | Should -Not -BeLike '*.zst'
        (Get-Item -LiteralPath $r.ObjectPath).Length | Should -Be $Size
        @(Get-ChildItem -Recurse -File (Join-Path $store 'objects') -Filter '*.zst').Count | Should -Be 0
        @(Get-ChildItem -File (Join-Path $store 'tmp')).Count | Should -Be 0
        (Get-RequiemCasObject -Cas $store -Hash $r.Hash).Verified | Should -BeTrue

        # Bytes that do shrink are still compressed, and the result reports the stored size.
        $text = Join-Path $Dir ("text-$Size-" + [guid]::NewGuid().ToString('n') + '.txt')
        [IO.File]::WriteAllText($text, ('requiem compresses repetitive text well ' * [int]($Size / 40)))
        $z = Add-RequiemCasObject -Cas $store -LiteralPath $text -Compress Zstd
        $z.Encoding | Should -Be 'Zstd'
        $z.StoredSize | Should -BeLessThan ($z.Size / 10)
        $z.StoredSize | Should -Be (Get-Item -LiteralPath $z.ObjectPath).Length
    }
}

Describe 'Special files planted in the store are reported, never waited on (issue 13)' -Skip:(-not $IsLinux) {
    It 'a FIFO or a symbolic link at a ref or an action-cache entry is a typed error or a damaged entry, and can be removed' {
        $store = New-Store
        $put = Add-RequiemCasObject -LiteralPath (New-TemporaryFile) -Cas $store
        Set-RequiemCasRef -Name 'good' -Hash $put.Hash -Cas $store | Out-Null
        & mkfifo (Join-Path $store 'refs/planted')
        New-Item -ItemType SymbolicLink -Path (Join-Path $store 'refs/link') -Target (Join-Path $store 'refs/good') | Out-Null
        $key = 'ab' * 32
        New-Item -ItemType Directory (Join-Path $store 'ac/ab') -Force | Out-Null
        & mkfifo (Join-Path $store "ac/ab/$key.json")

        # In a child process with a deadline: a reader that opened the FIFO for a blocking read would never return.
        $script = @"
Import-Module '$ModulePath'
`$r = [ordered]@{}
try { Get-RequiemCasRef -Name planted -Cas '$store' -ErrorAction Stop | Out-Null; `$r.fifo = 'none' } catch { `$r.fifo = `$_.FullyQualifiedErrorId; `$r.fifoMessage = `$_.Exception.Message }
try { Get-RequiemCasRef -Name link -Cas '$store' -ErrorAction Stop | Out-Null; `$r.link = 'none' } catch { `$r.link = `$_.FullyQualifiedErrorId }
`$r.list = (@(Get-RequiemCasRef -Cas '$store').Name) -join ','
try { Get-RequiemCacheEntry -Key '$key' -Cas '$store' -ErrorAction Stop | Out-Null; `$r.entry = 'none' } catch { `$r.entry = `$_.FullyQualifiedErrorId }
`$e = `$null; `$null = Get-RequiemCacheEntry -Cas '$store' -ErrorVariable e -ErrorAction SilentlyContinue; `$r.entries = "`$(`$e[0].FullyQualifiedErrorId)"
try { Optimize-RequiemCas -Cas '$store' -Confirm:`$false -ErrorAction Stop | Out-Null; `$r.gc = 'none' } catch { `$r.gc = `$_.FullyQualifiedErrorId }
Remove-RequiemCasRef -Name planted, link -Cas '$store' -Confirm:`$false
`$r.removed = -not (Test-Path -LiteralPath '$store/refs/planted') -and -not (Test-Path -LiteralPath '$store/refs/link')
`$r | ConvertTo-Json -Compress
"@
        $out = Join-Path $script:Dir "special-$([guid]::NewGuid().ToString('n')).json"
        $p = Start-Process -FilePath $Pwsh -ArgumentList '-NoProfile', '-NonInteractive', '-Command', $script -PassThru -RedirectStandardOutput $out -RedirectStandardError "$out.err"
        $finished = $p.WaitForExit(120000)
        if (-not $finished) { Stop-Process -Id $p.Id -Force; $p.WaitForExit() }
        $finished | Should -BeTrue -Because 'no reader may wait on a planted FIFO'
        $r = Get-Content -Raw -LiteralPath $out | ConvertFrom-Json
        $r.fifo | Should -Be 'InvalidRefFile,Requiem.PowerShell.GetRequiemCasRefCommand'
        $r.fifoMessage | Should -Match 'FIFO'
        $r.link | Should -Be 'InvalidRefFile,Requiem.PowerShell.GetRequiemCasRefCommand'
        $r.list | Should -Be 'good' -Because 'a listing skips what is not a ref file'
        $r.entry | Should -Be 'InvalidCacheEntry,Requiem.PowerShell.GetRequiemCacheEntryCommand'
        $r.entries | Should -Be 'InvalidCacheEntry,Requiem.PowerShell.GetRequiemCacheEntryCommand'
        $r.gc | Should -BeLike 'CasGcAborted,*'
        $r.removed | Should -BeTrue
        Test-Path -LiteralPath (Join-Path $store 'refs/good') | Should -BeTrue
    }
    It 'a FIFO or a symbolic link at an object is a damaged object for reads, verification and GC, never waited on or read through' {
        $store = New-Store
        $outside = Join-Path $script:Dir "outside-$([guid]::NewGuid().ToString('n')).txt"
        $objects = foreach ($text in 'referenced fifo', 'linked object', 'read fifo') {
            $f = Join-Path $script:Dir "obj-$([guid]::NewGuid().ToString('n')).txt"
            [IO.File]::WriteAllText($f, $text)
            Add-RequiemCasObject -LiteralPath $f -Cas $store
        }
        $fifo, $linked, $readFifo = $objects
        Set-RequiemCasRef -Name 'planted' -Hash $fifo.Hash -Cas $store | Out-Null
        foreach ($o in $fifo, $readFifo) { Remove-Item -LiteralPath $o.ObjectPath -Force; & mkfifo $o.ObjectPath }
        # The link points at the right bytes outside the store: following it would verify as good.
        [IO.File]::WriteAllText($outside, 'linked object')
        Remove-Item -LiteralPath $linked.ObjectPath -Force
        New-Item -ItemType SymbolicLink -Path $linked.ObjectPath -Target $outside | Out-Null

        $script = @"
Import-Module '$ModulePath'
`$r = [ordered]@{}
try { Optimize-RequiemCas -Cas '$store' -WhatIf -ErrorAction Stop | Out-Null; `$r.gc = 'none' } catch { `$r.gc = `$_.FullyQualifiedErrorId }
try { Get-RequiemCasObject -Hash '$($readFifo.Hash)' -Cas '$store' -ErrorAction Stop | Out-Null; `$r.get = 'none' } catch { `$r.get = `$_.FullyQualifiedErrorId; `$r.getMessage = `$_.Exception.Message }
`$t = Test-RequiemCas -All -Cas '$store'
`$r.corrupt = @(`$t.Corrupt | ForEach-Object { `$_.Hash + '=' + `$_.Reason })
`$r | ConvertTo-Json -Compress
"@
        $out = Join-Path $script:Dir "special-obj-$([guid]::NewGuid().ToString('n')).json"
        $p = Start-Process -FilePath $Pwsh -ArgumentList '-NoProfile', '-NonInteractive', '-Command', $script -PassThru -RedirectStandardOutput $out -RedirectStandardError "$out.err"
        $finished = $p.WaitForExit(90000)
        if (-not $finished) { Stop-Process -Id $p.Id -Force; $p.WaitForExit() }
        $finished | Should -BeTrue -Because 'no reader may wait on a FIFO planted at an object'
        $r = Get-Content -Raw -LiteralPath $out | ConvertFrom-Json
        $r.gc | Should -BeLike 'CasGcAborted,*' -Because 'the referenced object is damaged, so what it keeps alive is unknown'
        $r.get | Should -BeLike 'CasObjectCorrupt,*'
        $r.getMessage | Should -Match 'FIFO'
        $corrupt = @($r.corrupt)
        ($corrupt | Where-Object { $_ -like "$($fifo.Hash)=*" }) | Should -Match 'FIFO'
        ($corrupt | Where-Object { $_ -like "$($linked.Hash)=*" }) | Should -Match 'symbolic link' -Because 'an object is never read through a link'
        $corrupt | Where-Object { $_ -like "$($readFifo.Hash)=*" } | Should -Not -BeNullOrEmpty
        Get-Content -Raw -LiteralPath $outside | Should -Be 'linked object'
    }
}
