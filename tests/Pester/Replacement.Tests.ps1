BeforeAll {
    . (Join-Path $PSScriptRoot 'TestSetup.ps1')
    $script:Dir = New-TestDirectory
}
AfterAll { Remove-Item -Recurse -Force $script:Dir -ErrorAction Ignore }

Describe 'Test-RequiemReplacement' {
    It 'is ready on this machine, with the seed JSON shape' {
        $cas = Join-Path $Dir 'cas-ok'
        $r = Test-RequiemReplacement -Cas $cas
        $r.Ok | Should -BeTrue -Because ($r.Blockers -join '; ')
        $r.Blockers.Count | Should -Be 0
        $r.HashPrimitive | Should -Be 'blake3'
        $json = Test-RequiemReplacement -Cas $cas -AsJson | ConvertFrom-Json
        $json.ok | Should -BeTrue
        $json.hash_primitive | Should -Be 'blake3'
        @($json.blockers).Count | Should -Be 0
        Test-RequiemReplacement -Cas $cas -Quiet | Should -BeExactly $true
    }

    It 'blocks when the config allows the hash fallback' {
        $f = Join-Path $Dir 'fallback.json'
        Set-Content $f '{"config_version":"1.1","hash":{"allow_fallback":true}}'
        $out = Invoke-FreshPwsh -Environment @{ REQUIEM_CONFIG = $f } -Script @"
Import-Module '$ModulePath'
`$r = Test-RequiemReplacement -Cas '$(Join-Path $Dir 'cas-fb')' -WarningAction SilentlyContinue
`$r.Ok; `$r.Blockers
"@
        $out[0] | Should -Be 'False'
        ($out -join "`n") | Should -Match 'hash_fallback'
    }

    It 'blocks when BLAKE3 is unavailable, and -FailOnBlocker gates with ReplacementBlocked' {
        $out = Invoke-FreshPwsh -AllowFailure -Environment @{ REQUIEM_SIMULATE_BLAKE3_FAILURE = '1' } -Script @"
Import-Module '$ModulePath'
(Test-RequiemReplacement -Cas '$(Join-Path $Dir 'cas-b3')' -AsJson | ConvertFrom-Json).blockers
try { Test-RequiemReplacement -Cas '$(Join-Path $Dir 'cas-b3')' -FailOnBlocker; 'NO-ERROR' } catch { `$_.FullyQualifiedErrorId }
"@
        ($out -join "`n") | Should -Match 'hash_primitive'
        $out | Should -Contain 'ReplacementBlocked,Requiem.PowerShell.TestRequiemReplacementCommand'
    }

    It 'blocks on a path that is not a CAS store' {
        $notStore = Join-Path $Dir 'not-a-store'
        New-Item -ItemType Directory $notStore | Out-Null
        Set-Content (Join-Path $notStore 'precious.txt') 'keep me'
        $r = Test-RequiemReplacement -Cas $notStore
        $r.Ok | Should -BeFalse
        ($r.Blockers -join "`n") | Should -Match '^cas:'
        Get-Content (Join-Path $notStore 'precious.txt') | Should -Be 'keep me'
    }
}
