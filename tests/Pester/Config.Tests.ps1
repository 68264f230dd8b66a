BeforeAll {
    . (Join-Path $PSScriptRoot 'TestSetup.ps1')
    $script:Dir = New-TestDirectory
}
AfterAll { Remove-Item -Recurse -Force $script:Dir -ErrorAction Ignore }

Describe 'Test-RequiemConfig' {
    It 'accepts the seed example config' {
        $f = Join-Path $Dir 'seed.json'
        Set-Content $f '{"config_version":"1.1","hash":{"primitive":"blake3","backend":"vendored"},"cas":{"version":"v2","compression":"identity"},"sandbox":{"deny_network":false,"max_memory_bytes":1073741824}}'
        $r = Test-RequiemConfig -Path $f
        $r.Valid | Should -BeTrue
        $r.Errors.Count | Should -Be 0
        $r.ConfigVersion | Should -Be '1.1'
        Test-RequiemConfig -LiteralPath $f -Quiet | Should -BeExactly $true
    }

    It 'reports every problem with its field, as a result and not an error' {
        $f = Join-Path $Dir 'bad.json'
        Set-Content $f '{"config_version":"1.1","hash":{"primitive":"md5"},"cas":{"compression":"gzip"},"sandbox":{"max_memory_bytes":-1},"typo":true}'
        $r = Test-RequiemConfig -Path $f -ErrorAction Stop
        $r.Valid | Should -BeFalse
        $r.Errors.Field | Should -Contain '$.hash.primitive'
        $r.Errors.Field | Should -Contain '$.cas.compression'
        $r.Errors.Field | Should -Contain '$.sandbox.max_memory_bytes'
        $r.Errors.Field | Should -Contain '$.typo'
        Test-RequiemConfig -Path $f -Quiet | Should -BeExactly $false
    }

    It 'warns about allow_fallback' {
        $f = Join-Path $Dir 'fallback.json'
        Set-Content $f '{"config_version":"1.1","hash":{"allow_fallback":true}}'
        $r = Test-RequiemConfig -Path $f -WarningVariable w -WarningAction SilentlyContinue
        $r.Valid | Should -BeTrue
        $w.Count | Should -Be 1
        "$w" | Should -Match 'allow_fallback'
    }

    It 'gives FileNotFound for a missing file' {
        { Test-RequiemConfig -LiteralPath (Join-Path $Dir 'nope.json') -ErrorAction Stop } |
            Should -Throw -ErrorId 'FileNotFound,Requiem.PowerShell.TestRequiemConfigCommand'
    }

    It 'refuses to run digests under an invalid config in effect' {
        $f = Join-Path $Dir 'broken.json'
        Set-Content $f '{"config_version":"2.0"}'
        $out = Invoke-FreshPwsh -AllowFailure -Environment @{ REQUIEM_CONFIG = $f } -Script @"
Import-Module '$ModulePath'
try { Get-RequiemDigest -InputObject x; 'NO-ERROR' } catch { `$_.FullyQualifiedErrorId }
"@
        $out | Should -Contain 'InvalidConfig,Requiem.PowerShell.GetRequiemDigestCommand'
    }

    It 'lets the config allow the hash fallback' {
        $f = Join-Path $Dir 'allow.json'
        Set-Content $f '{"config_version":"1.1","hash":{"allow_fallback":true}}'
        $out = Invoke-FreshPwsh -Environment @{ REQUIEM_CONFIG = $f; REQUIEM_SIMULATE_BLAKE3_FAILURE = '1' } -Script @"
Import-Module '$ModulePath'
(Get-RequiemDigest -InputObject 'hello').Algorithm
"@
        $out | Should -Contain 'SHA256'
    }
}
