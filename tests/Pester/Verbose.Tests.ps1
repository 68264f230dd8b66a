# -Verbose on cmdlets that touch a store says which store and config were used and what happened there.
BeforeAll {
    . (Join-Path $PSScriptRoot 'TestSetup.ps1')
    $script:Dir = New-TestDirectory

    function script:Get-VerboseText([scriptblock] $Action) {
        # The verbose messages the action writes, one string each.
        @(& $Action -Verbose 4>&1 | Where-Object { $_ -is [System.Management.Automation.VerboseRecord] } | ForEach-Object Message)
    }
}
AfterAll { Remove-Item -Recurse -Force $script:Dir -ErrorAction Ignore }

Describe '-Verbose names the store and the config, and what was stored, deduplicated and verified' {
    BeforeEach {
        $script:Cas = Join-Path $Dir ('cas-' + [guid]::NewGuid().ToString('n'))
    }

    It 'Add-RequiemCasObject: objects and bytes stored, and deduplicated on a second run' {
        $first = Get-VerboseText { 'alpha', 'beta!' | Add-RequiemCasObject -Cas $Cas -Compress None -Verbose | Out-Null }
        $first | Should -Contain "Store $($Cas): 2 object(s) stored (10 bytes, 10 on disk), 0 already present (0 bytes deduplicated)."
        ($first | Where-Object { $_ -like 'Store: *' }) | Should -BeLike "Store: $Cas (from -Cas); config: *"
        $second = Get-VerboseText { 'alpha', 'gamma' | Add-RequiemCasObject -Cas $Cas -Compress None -Verbose | Out-Null }
        $second | Should -Contain "Store $($Cas): 1 object(s) stored (5 bytes, 5 on disk), 1 already present (5 bytes deduplicated)."
    }

    It 'Get-RequiemCasObject and Test-RequiemCas: objects verified' {
        $o = Add-RequiemCasObject -Cas $Cas -InputObject 'twelve bytes'
        Add-RequiemCasObject -Cas $Cas -InputObject 'more' | Out-Null
        Get-VerboseText { Get-RequiemCasObject -Hash $o.Hash -Cas $Cas -Verbose | Out-Null } |
            Should -Contain "Store $($Cas): 1 object(s) verified (12 bytes re-hashed)."
        Get-VerboseText { Test-RequiemCas -All -Cas $Cas -Verbose | Out-Null } |
            Should -Contain "Store $($Cas): 2 object(s) verified (16 bytes re-hashed)."
    }

    It 'Measure-RequiemDrift: the store the differing outputs are read back from' {
        $report = Invoke-RequiemBench -Command 'date +%N' -Runs 2 -Warmup 0 -Cas $Cas
        $text = Get-VerboseText { $report | Measure-RequiemDrift -Cas $Cas -Verbose | Out-Null }
        ($text | Where-Object { $_ -like 'Store: *' }) | Should -BeLike "Store: $Cas (from -Cas); config: *"
        $text | Should -Contain "Store $($Cas): 2 object(s) verified (20 bytes re-hashed)."
    }

    It 'Get-RequiemCasRef on an empty store says nothing was stored or read back' {
        Get-VerboseText { Get-RequiemCasRef -Cas (New-Item -ItemType Directory (Join-Path $Dir 'empty') -Force).FullName -Verbose -ErrorAction Ignore | Out-Null } |
            Should -Contain "Store $(Join-Path $Dir 'empty'): nothing stored or read back."
    }

    It 'names $REQUIEM_CAS and the config file in effect (Invoke-RequiemExec, fresh session)' {
        $config = Join-Path $Dir 'config.json'
        Set-Content -LiteralPath $config '{"config_version":"1.1"}'
        $ws = New-Item -ItemType Directory (Join-Path $Dir 'ws') -Force
        $out = Invoke-FreshPwsh -Environment @{ REQUIEM_CAS = $Cas; REQUIEM_CONFIG = $config } -Script @"
Import-Module '$ModulePath'
Invoke-RequiemExec -Request @{ command = '/bin/echo'; argv = @('hi'); workspace_root = '$($ws.FullName)' } -Verbose 4>&1 |
    Where-Object { `$_ -is [System.Management.Automation.VerboseRecord] } | ForEach-Object Message
"@
        $out | Should -Contain "Store: $Cas (from `$REQUIEM_CAS); config: '$config'."
        ($out | Where-Object { $_ -like "Store $($Cas): *" }) | Should -Match '^Store .*: [1-9]\d* object\(s\) stored \(\d+ bytes, \d+ on disk\), \d+ already present'
    }

    It 'names the defaults when there is no config file' {
        $data = Join-Path $Dir 'no-config-data'
        Add-RequiemCasObject -Cas $Cas -InputObject 'x' | Out-Null
        $out = Invoke-FreshPwsh -Environment @{ REQUIEM_CAS = $null; REQUIEM_CONFIG = $null; XDG_DATA_HOME = $data } -Script @"
Import-Module '$ModulePath'
Get-RequiemCasStatistic -Cas '$Cas' -Verbose 4>&1 -ErrorAction Ignore | Where-Object { `$_ -is [System.Management.Automation.VerboseRecord] } | ForEach-Object Message
"@
        $out | Should -Contain "Store: $Cas (from -Cas); config: the defaults (no config file at '$(Join-Path $data 'requiem/config.json')')."
    }
}
