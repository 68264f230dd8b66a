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

    It 'reports the defaults as valid when there is no config file' {
        $data = Join-Path $Dir 'empty-data'
        $out = Invoke-FreshPwsh -Environment @{ REQUIEM_CONFIG = $null; XDG_DATA_HOME = $data } -Script @"
Import-Module '$ModulePath'
`$r = Test-RequiemConfig -Verbose 4>&1
`$v = `$r | Where-Object { `$_ -is [System.Management.Automation.VerboseRecord] }
`$c = `$r | Where-Object { `$_ -isnot [System.Management.Automation.VerboseRecord] }
"valid=`$(`$c.Valid) defaults=`$(`$c.UsingDefaults) version=`$(`$c.ConfigVersion) path=`$(`$c.Path)"
"verbose=`$v"
"quiet=`$(Test-RequiemConfig -Quiet)"
"@
        $expected = Join-Path $data 'requiem/config.json'
        $out | Should -Contain "valid=True defaults=True version=1.1 path=$expected"
        $out | Should -Contain "verbose=No config file at '$expected' and `$REQUIEM_CONFIG is not set: the defaults are in effect."
        $out | Should -Contain 'quiet=True'
    }

    It '-Quiet returns $false and writes no error for <Case>' -ForEach @(
        @{ Case = 'a missing -LiteralPath'; Call = { Test-RequiemConfig -LiteralPath (Join-Path $Dir 'absent.json') -Quiet } }
        @{ Case = 'a wildcard that matches nothing'; Call = { Test-RequiemConfig -Path (Join-Path $Dir 'absent-*.json') -Quiet } }
        @{ Case = 'a directory'; Call = { Test-RequiemConfig -LiteralPath $Dir -Quiet } }
        @{ Case = 'an invalid file'; Call = { Set-Content (Join-Path $Dir 'q.json') '{"config_version":"9"}'; Test-RequiemConfig -LiteralPath (Join-Path $Dir 'q.json') -Quiet } }
    ) {
        $errors = $null
        $result = & $Call -ErrorVariable errors -ErrorAction Stop
        $result | Should -BeExactly $false
        $errors.Count | Should -Be 0
    }

    It '-Quiet is $false without an error when REQUIEM_CONFIG names a missing file; without -Quiet, ConfigNotFound' {
        $missing = Join-Path $Dir 'not-there.json'
        $out = Invoke-FreshPwsh -Environment @{ REQUIEM_CONFIG = $missing } -Script @"
Import-Module '$ModulePath'
"quiet=`$(Test-RequiemConfig -Quiet -ErrorAction Stop) errors=`$(`$Error.Count)"
try { Test-RequiemConfig -ErrorAction Stop } catch { "`$(`$_.FullyQualifiedErrorId) `$(`$_.Exception.Message)" }
"@
        $out | Should -Contain 'quiet=False errors=0'
        $out | Should -Contain "ConfigNotFound,Requiem.PowerShell.TestRequiemConfigCommand `$REQUIEM_CONFIG names '$missing', which does not exist."
    }

    It 'reports a duplicate key with its JSON path, at the top level and inside a section' {
        $f = Join-Path $Dir 'dup.json'
        Set-Content $f '{"config_version":"1.1","cas":{"compression":"zstd","compression":"identity"},"config_version":"1.1"}'
        $r = Test-RequiemConfig -LiteralPath $f
        $r.Valid | Should -BeFalse
        ($r.Errors | Where-Object Field -eq '$.cas.compression').Message | Should -Be 'duplicate key: the field is given more than once; give it once'
        ($r.Errors | Where-Object Field -eq '$.config_version').Message | Should -Be 'duplicate key: the field is given more than once; give it once'
        $r.Errors.Count | Should -Be 2
    }

    It 'says a directory is a directory' {
        $err = { Test-RequiemConfig -LiteralPath $Dir -ErrorAction Stop } | Should -Throw -PassThru
        $err.FullyQualifiedErrorId | Should -Be 'PathIsDirectory,Requiem.PowerShell.TestRequiemConfigCommand'
        $err.Exception.Message | Should -Be "'$Dir' is a directory, not a config file."
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
