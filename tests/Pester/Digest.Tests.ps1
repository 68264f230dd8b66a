BeforeAll {
    . (Join-Path $PSScriptRoot 'TestSetup.ps1')
    $script:Dir = New-TestDirectory
    $script:HasB3sum = [bool](Get-Command b3sum -ErrorAction Ignore)
}
AfterAll { Remove-Item -Recurse -Force $script:Dir -ErrorAction Ignore }

Describe 'Get-RequiemDigest' {
    It 'gives the seed digests for "" and "hello"' {
        (Get-RequiemDigest -InputObject '').Hash | Should -Be 'af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262'
        (Get-RequiemDigest -InputObject 'hello').Hash | Should -Be 'ea8f163db38682925e4491c5e58d4bb3506ef8c14eb78a86e908c5624a67200f'
    }

    It 'matches the official BLAKE3 test vector for <Length> bytes' -ForEach @(
        @{ Length = 0; Hash = 'af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262' }
        @{ Length = 1; Hash = '2d3adedff11b61f14c886e35afa036736dcd87a74d27b5c1510225d0f592e213' }
        @{ Length = 1023; Hash = '10108970eeda3eb932baac1428c7a2163b0e924c9a9e25b35bba72b28f70bd11' }
        @{ Length = 1024; Hash = '42214739f095a406f3fc83deb889744ac00df831c10daa55189b5d121c855af7' }
        @{ Length = 1025; Hash = 'd00278ae47eb27b34faecf67b4fe263f82d5412916c1ffd97c8cb7fb814b8444' }
        @{ Length = 2048; Hash = 'e776b6028c7cd22a4d0ba182a8bf62205d2ef576467e838ed6f2529b85fba24a' }
        @{ Length = 8192; Hash = 'aae792484c8efe4f19e2ca7d371d8c467ffb10748d8a5a1ae579948f718a2a63' }
        @{ Length = 102400; Hash = 'bc3e3d41a1146b069abffad3c0d44860cf664390afce4d9661f7902e7943e085' }
    ) {
        $file = Join-Path $Dir "vector-$Length.bin"
        New-PatternFile -Path $file -Length $Length
        (Get-RequiemDigest -LiteralPath $file).Hash | Should -Be $Hash
        $bytes = [IO.File]::ReadAllBytes($file)
        (Get-RequiemDigest -InputObject $bytes).Hash | Should -Be $Hash
    }

    It 'agrees with b3sum on <Length> bytes of random data' -Skip:(-not (Get-Command b3sum -ErrorAction Ignore)) -ForEach @(
        0, 1, 63, 64, 65, 1023, 1024, 1025, 2047, 2049, 4096, 16383, 16385, 65536, 65537, 1048575, 1048576, 1048577, (5MB + 3), (16MB + 1024) | ForEach-Object { @{ Length = $_ } }
    ) {
        $file = Join-Path $Dir "random-$Length.bin"
        $bytes = [byte[]]::new($Length)
        [Random]::new($Length).NextBytes($bytes)
        [IO.File]::WriteAllBytes($file, $bytes)
        $expected = (& b3sum --no-names $file).Trim()
        (Get-RequiemDigest -LiteralPath $file).Hash | Should -Be $expected
    }

    It 'gives the same digest of a large file with domain <Domain> on one core, every core and in b3sum' -ForEach @(
        @{ Domain = 'None'; Prefix = '' }, @{ Domain = 'Cas'; Prefix = 'cas:' }
    ) {
        # The 4-byte prefix shifts every chunk boundary of the file; one core and every core split it differently.
        $file = Join-Path $Dir "large-$Domain.bin"
        $bytes = [byte[]]::new(9MB + 517)
        [Random]::new(15).NextBytes($bytes)
        [IO.File]::WriteAllBytes($file, $bytes)
        $all = (Get-RequiemDigest -LiteralPath $file -Domain $Domain).Hash
        (Get-RequiemDigest -LiteralPath $file -Domain $Domain -ThrottleLimit 1).Hash | Should -Be $all
        (Get-RequiemDigest -LiteralPath $file -Domain $Domain -ThrottleLimit 3).Hash | Should -Be $all
        if ($HasB3sum) {
            $prefixed = Join-Path $Dir "large-$Domain.prefixed"
            [IO.File]::WriteAllBytes($prefixed, [byte[]]([Text.Encoding]::ASCII.GetBytes($Prefix) + $bytes))
            $all | Should -Be (& b3sum --no-names $prefixed).Trim()
        }
    }

    It 'refuses -ThrottleLimit 0' {
        { Get-RequiemDigest -InputObject 'x' -ThrottleLimit 0 -ErrorAction Stop } |
            Should -Throw -ErrorId 'ParameterArgumentValidationError,Requiem.PowerShell.GetRequiemDigestCommand'
    }

    It 'takes hash.max_threads from the config and gives the same digest' {
        $config = Join-Path $Dir 'threads.json'
        Set-Content $config '{"config_version":"1.1","hash":{"max_threads":1}}'
        $file = Join-Path $Dir 'threads.bin'
        New-PatternFile -Path $file -Length (3MB + 5)
        $expected = (Get-RequiemDigest -LiteralPath $file).Hash
        $out = Invoke-FreshPwsh -Environment @{ REQUIEM_CONFIG = $config } -Script @"
Import-Module '$ModulePath'
(Get-RequiemDigest -LiteralPath '$file' -Domain None).Hash
"@
        $out | Should -Contain $expected
        (Test-RequiemConfig -Path $config).Valid | Should -BeTrue
        Set-Content $config '{"config_version":"1.1","hash":{"max_threads":0}}'
        (Test-RequiemConfig -Path $config).Errors.Field | Should -Contain '$.hash.max_threads'
    }

    It 'domain-separates as BLAKE3(prefix || bytes) for <Domain>' -ForEach @(
        @{ Domain = 'Cas'; Prefix = 'cas:' }, @{ Domain = 'Request'; Prefix = 'req:' }, @{ Domain = 'Result'; Prefix = 'res:' }, @{ Domain = 'ActionCache'; Prefix = 'ac:' }
    ) {
        $file = Join-Path $Dir "domain.bin"
        New-PatternFile -Path $file -Length 3000000
        $plain = [IO.File]::ReadAllBytes($file)
        $prefixed = [Text.Encoding]::ASCII.GetBytes($Prefix) + $plain
        $expected = (Get-RequiemDigest -InputObject ([byte[]]$prefixed)).Hash
        (Get-RequiemDigest -LiteralPath $file -Domain $Domain).Hash | Should -Be $expected
        (Get-RequiemDigest -InputObject $plain -Domain $Domain).Hash | Should -Be $expected
        $expected | Should -Not -Be (Get-RequiemDigest -LiteralPath $file).Hash
    }

    It 'takes Get-ChildItem output through the pipeline and expands wildcards' {
        $sub = Join-Path $Dir 'pipe'
        New-Item -ItemType Directory $sub | Out-Null
        1..5 | ForEach-Object { Set-Content -LiteralPath (Join-Path $sub "f$_.txt") -Value "file $_" -NoNewline }
        $fromPipe = Get-ChildItem $sub -File | Get-RequiemDigest
        $fromWildcard = Get-RequiemDigest -Path (Join-Path $sub 'f*.txt')
        $fromPipe.Count | Should -Be 5
        $fromWildcard.Count | Should -Be 5
        ($fromPipe | Sort-Object Path).Hash | Should -Be ($fromWildcard | Sort-Object Path).Hash
        ($fromPipe | Where-Object { $_.Path -like '*f3.txt' }).Hash | Should -Be (Get-RequiemDigest -InputObject 'file 3').Hash
        $fromPipe[0].Algorithm | Should -Be 'BLAKE3'
        $fromPipe[0].Length | Should -Be 6
    }

    It 'treats a literal path with wildcard characters literally' {
        $odd = Join-Path $Dir 'odd[1].txt'
        [IO.File]::WriteAllText($odd, 'odd')
        (Get-RequiemDigest -LiteralPath $odd).Hash | Should -Be (Get-RequiemDigest -InputObject 'odd').Hash
    }

    It 'writes FileNotFound with the path as target and goes on with the other paths' {
        $good = Join-Path $Dir 'good.txt'
        [IO.File]::WriteAllText($good, 'good')
        $missing = Join-Path $Dir 'missing.txt'
        $out = Get-RequiemDigest -LiteralPath $missing, $good -ErrorVariable errs -ErrorAction SilentlyContinue
        $out.Count | Should -Be 1
        $errs.Count | Should -Be 1
        $errs[0].FullyQualifiedErrorId | Should -Be 'FileNotFound,Requiem.PowerShell.GetRequiemDigestCommand'
        $errs[0].TargetObject | Should -Be $missing
        $errs[0].CategoryInfo.Category | Should -Be 'ObjectNotFound'
    }

    It 'refuses a directory with PathIsDirectory' {
        { Get-RequiemDigest -LiteralPath $Dir -ErrorAction Stop } | Should -Throw -ErrorId 'PathIsDirectory,Requiem.PowerShell.GetRequiemDigestCommand'
    }

    It 'refuses unsupported input types with UnsupportedInputType' {
        { Get-RequiemDigest -InputObject 42 -ErrorAction Stop } | Should -Throw -ErrorId 'UnsupportedInputType,Requiem.PowerShell.GetRequiemDigestCommand'
    }

    It 'refuses non-file-system paths with NotFileSystemPath' {
        { Get-RequiemDigest -Path 'env:PATH' -ErrorAction Stop } | Should -Throw -ErrorId 'NotFileSystemPath,Requiem.PowerShell.GetRequiemDigestCommand'
    }

    It 'refuses an unreadable file with FileReadError' -Skip:$IsWindows {
        $locked = Join-Path $Dir 'locked.txt'
        [IO.File]::WriteAllText($locked, 'x')
        chmod 000 $locked
        $check = "Import-Module '$ModulePath'; try { Get-RequiemDigest -LiteralPath '$locked' -ErrorAction Stop; 'NO-ERROR' } catch { `$_.FullyQualifiedErrorId }"
        if ((id -u) -eq '0') {
            # root reads any file: drop the capabilities that let it (as the CAS tests do) for this one process.
            if (-not (Get-Command setpriv -ErrorAction Ignore)) { Set-ItResult -Skipped -Because 'running as root without setpriv: root reads any file'; return }
            $out = & setpriv --bounding-set=-dac_override,-dac_read_search --inh-caps=-dac_override,-dac_read_search $Pwsh -NoProfile -NonInteractive -Command $check
        }
        else {
            $out = & $Pwsh -NoProfile -NonInteractive -Command $check
        }
        $out | Should -Contain 'FileReadError,Requiem.PowerShell.GetRequiemDigestCommand'
    }
}

Describe 'Test-RequiemDigest' {
    It 'returns Valid true for the right digest and false for a wrong one, without throwing' {
        $ok = Test-RequiemDigest -InputObject 'hello' -Expected 'EA8F163DB38682925E4491C5E58D4BB3506EF8C14EB78A86E908C5624A67200F' -ErrorAction Stop
        $ok.Valid | Should -BeTrue
        $ok.Actual | Should -Be 'ea8f163db38682925e4491c5e58d4bb3506ef8c14eb78a86e908c5624a67200f'
        $bad = Test-RequiemDigest -InputObject 'hellO' -Expected 'ea8f163db38682925e4491c5e58d4bb3506ef8c14eb78a86e908c5624a67200f' -ErrorAction Stop
        $bad.Valid | Should -BeFalse
        Test-RequiemDigest -InputObject 'hellO' -Expected $bad.Expected -Quiet | Should -BeExactly $false
        Test-RequiemDigest -InputObject 'hello' -Expected $bad.Expected -Quiet | Should -BeExactly $true
    }

    It 'checks files with a domain' {
        $f = Join-Path $Dir 'verify.txt'
        [IO.File]::WriteAllText($f, 'payload')
        $h = (Get-RequiemDigest -LiteralPath $f -Domain Cas).Hash
        Test-RequiemDigest -LiteralPath $f -Expected $h -Domain Cas -Quiet | Should -BeTrue
        Test-RequiemDigest -LiteralPath $f -Expected $h -Quiet | Should -BeFalse
    }

    It 'refuses a malformed expected digest with InvalidDigest: <Value>' -ForEach @(
        @{ Value = 'abc' }, @{ Value = ('g' * 64) }, @{ Value = '../' + ('a' * 61) }
    ) {
        { Test-RequiemDigest -InputObject 'x' -Expected $Value } | Should -Throw -ErrorId 'InvalidDigest,Requiem.PowerShell.TestRequiemDigestCommand'
    }
}

Describe 'Fail-closed hashing' {
    It 'stops with HashUnavailableBlake3 when BLAKE3 fails its self-test' {
        $out = Invoke-FreshPwsh -AllowFailure -Environment @{ REQUIEM_SIMULATE_BLAKE3_FAILURE = '1' } -Script @"
Import-Module '$ModulePath'
try { Get-RequiemDigest -InputObject 'hello'; 'NO-ERROR' } catch { `$_.FullyQualifiedErrorId; `$_.Exception.Message }
"@
        $out[0] | Should -Be 'HashUnavailableBlake3,Requiem.PowerShell.GetRequiemDigestCommand'
        $out[1] | Should -Match 'hash_unavailable_blake3'
    }

    It 'uses SHA-256 only with -AllowHashFallback, and says so in the output' {
        $out = Invoke-FreshPwsh -Environment @{ REQUIEM_SIMULATE_BLAKE3_FAILURE = '1' } -Script @"
Import-Module '$ModulePath'
`$d = Get-RequiemDigest -InputObject 'hello' -AllowHashFallback
`$d.Algorithm; `$d.HashFallback; `$d.Hash
"@
        $out[0] | Should -Be 'SHA256'
        $out[1] | Should -Be 'True'
        $out[2] | Should -Be '2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824'
    }
}
