BeforeAll {
    . (Join-Path $PSScriptRoot 'TestSetup.ps1')
    $script:Dir = New-TestDirectory
    function script:Get-ErrorId {
        param([scriptblock] $Script)
        try { & $Script | Out-Null; return '<no error>' } catch { return $_.FullyQualifiedErrorId }
    }
}
AfterAll { Remove-Item -Recurse -Force $script:Dir -ErrorAction Ignore }

Describe 'Tenant stores' {
    BeforeAll {
        $script:Cas = Join-Path $Dir 'shared'
        $script:ObjB = 'tenant b secret' | Add-RequiemCasObject -Cas $Cas -Tenant team-b
        $script:ObjA = 'tenant a data' | Add-RequiemCasObject -Cas $Cas -Tenant team-a
    }

    It 'keeps each tenant in its own store under tenants/(name)' {
        $ObjB.ObjectPath | Should -BeLike (Join-Path $Cas 'tenants/team-b/objects/*')
        Test-Path (Join-Path $Cas 'tenants/team-b/audit/log.jsonl') | Should -BeTrue
    }

    It 'does not let tenant A read tenant B''s object by hash or by prefix' {
        Get-ErrorId { Get-RequiemCasObject -Cas $Cas -Tenant team-a -Hash $ObjB.Hash -ErrorAction Stop } | Should -Be 'CasObjectNotFound,Requiem.PowerShell.GetRequiemCasObjectCommand'
        Get-ErrorId { Get-RequiemCasObject -Cas $Cas -Tenant team-a -Hash $ObjB.Hash.Substring(0, 8) -ErrorAction Stop } | Should -Be 'CasObjectNotFound,Requiem.PowerShell.GetRequiemCasObjectCommand'
        Get-ErrorId { Export-RequiemCasObject -Cas $Cas -Tenant team-a -Hash $ObjB.Hash -AsByteStream -ErrorAction Stop } | Should -Be 'CasObjectNotFound,Requiem.PowerShell.ExportRequiemCasObjectCommand'
        # Nor does the store at the root (no tenant) see it.
        Get-ErrorId { Get-RequiemCasObject -Cas $Cas -Hash $ObjB.Hash -ErrorAction Stop } | Should -Be 'CasObjectNotFound,Requiem.PowerShell.GetRequiemCasObjectCommand'
        # Tenant B itself does.
        (Get-RequiemCasObject -Cas $Cas -Tenant team-b -Hash $ObjB.Hash.Substring(0, 8)).Hash | Should -Be $ObjB.Hash
    }

    It 'does not let tenant A (or the root store) collect tenant B''s objects' {
        $gc = Optimize-RequiemCas -Cas $Cas -Tenant team-a -GracePeriod 0 -Force
        $gc.Candidates.Hash | Should -Not -Contain $ObjB.Hash
        $gc.Candidates.Hash | Should -Contain $ObjA.Hash
        $root = Optimize-RequiemCas -Cas $Cas -Tenant '' -GracePeriod 0 -Force
        $root.Candidates.Hash | Should -Not -Contain $ObjB.Hash
        (Get-RequiemCasObject -Cas $Cas -Tenant team-b -Hash $ObjB.Hash).Hash | Should -Be $ObjB.Hash
        Test-Path $ObjB.ObjectPath | Should -BeTrue
    }

    It 'refuses a tenant folder that is a symbolic link (to another tenant''s store)' -Skip:(-not $IsLinux) {
        New-Item -ItemType SymbolicLink -Path (Join-Path $Cas 'tenants/team-c') -Target (Join-Path $Cas 'tenants/team-b') | Out-Null
        try {
            $caught = try { Get-RequiemCasObject -Cas $Cas -Tenant team-c -Hash $ObjB.Hash -ErrorAction Stop; $null } catch { $_ }
            $caught.FullyQualifiedErrorId | Should -Be 'TenantStoreIsLink,Requiem.PowerShell.GetRequiemCasObjectCommand'
            $caught.TargetObject | Should -Be (Join-Path $Cas 'tenants/team-c')
            Get-ErrorId { 'x' | Add-RequiemCasObject -Cas $Cas -Tenant team-c -ErrorAction Stop } | Should -Be 'TenantStoreIsLink,Requiem.PowerShell.AddRequiemCasObjectCommand'
        }
        finally { Remove-Item (Join-Path $Cas 'tenants/team-c') -Force }
    }

    It 'takes the tenant from $env:REQUIEM_TENANT, and -Tenant wins over it' {
        $out = Invoke-FreshPwsh -Environment @{ REQUIEM_TENANT = 'team-b'; REQUIEM_CAS = $Cas } -Script @"
Import-Module '$ModulePath'
(Get-RequiemCasObject -Hash $($ObjB.Hash)).Hash
try { Get-RequiemCasObject -Hash $($ObjB.Hash) -Tenant team-a -ErrorAction Stop } catch { `$_.FullyQualifiedErrorId }
"@
        $out[0] | Should -Be $ObjB.Hash
        $out[1] | Should -Be 'CasObjectNotFound,Requiem.PowerShell.GetRequiemCasObjectCommand'
    }

    It 'refuses tenant names that are not one plain directory name: <_>' -ForEach @('../team-b', 'team-b/..', '..', 'a/b', 'Team', '-x', ('x' * 64), 'a b', "team-b`n", "team-b`r`n", "te`u{0130}m") {
        $name = $_
        $id = Get-ErrorId { Get-RequiemCasObject -Cas $Cas -Tenant $name -Hash $ObjB.Hash }
        $id | Should -Be 'InvalidTenantName,Requiem.PowerShell.GetRequiemCasObjectCommand'
        $caught = try { Get-RequiemCasObject -Cas $Cas -Tenant $name -Hash $ObjB.Hash; $null } catch { $_ }
        $caught.TargetObject | Should -Be $name
    }

    It 'refuses a bad $env:REQUIEM_TENANT the same way' {
        $out = Invoke-FreshPwsh -Environment @{ REQUIEM_TENANT = '../team-b'; REQUIEM_CAS = $Cas } -Script @"
Import-Module '$ModulePath'
try { 'x' | Add-RequiemCasObject -ErrorAction Stop } catch { `$_.FullyQualifiedErrorId }
"@
        $out | Should -Be 'InvalidTenantName,Requiem.PowerShell.AddRequiemCasObjectCommand'
        Test-Path (Join-Path $Cas 'team-b') | Should -BeFalse
    }
}

Describe 'Tenant quota' {
    It 'stops a put over the quota cleanly, with nothing partial left' {
        $cas = Join-Path $Dir 'quota'
        $config = Join-Path $Dir 'quota-config.json'
        Set-Content -LiteralPath $config -Value '{"config_version":"1.1","tenants":{"small":{"quota_bytes":1000}}}'
        $big = Join-Path $Dir 'big.bin'
        [IO.File]::WriteAllBytes($big, [byte[]]::new(5MB))
        $out = Invoke-FreshPwsh -Environment @{ REQUIEM_CONFIG = $config; REQUIEM_CAS = $cas } -Script @"
Import-Module '$ModulePath'
(('a' * 600) | Add-RequiemCasObject -Tenant small).Existed
(('a' * 600) | Add-RequiemCasObject -Tenant small).Existed
try { ('b' * 600) | Add-RequiemCasObject -Tenant small -ErrorAction Stop } catch { `$_.FullyQualifiedErrorId; `$_.TargetObject; `$_.CategoryInfo.Category }
try { Add-RequiemCasObject -LiteralPath '$big' -Tenant small -ErrorAction Stop } catch { `$_.FullyQualifiedErrorId }
(('c' * 600) | Add-RequiemCasObject -Tenant other).Existed
"@
        $out[0] | Should -Be 'False'
        $out[1] | Should -Be 'True' -Because 'an object already stored costs nothing'
        $out[2] | Should -Be 'TenantQuotaExceeded,Requiem.PowerShell.AddRequiemCasObjectCommand'
        $out[3] | Should -Be 'small'
        $out[4] | Should -Be 'LimitsExceeded'
        $out[5] | Should -Be 'TenantQuotaExceeded,Requiem.PowerShell.AddRequiemCasObjectCommand'
        $out[6] | Should -Be 'False' -Because 'another tenant has no quota'
        $store = Join-Path $cas 'tenants/small'
        @(Get-ChildItem (Join-Path $store 'objects') -Recurse -File).Count | Should -Be 1
        @(Get-ChildItem (Join-Path $store 'tmp') -Force -File).Count | Should -Be 0
    }

    It 'validates tenant settings in the config' {
        $config = Join-Path $Dir 'bad-tenants.json'
        Set-Content -LiteralPath $config -Value '{"config_version":"1.1","tenant":"../x","tenants":{"ok":{"quota_bytes":-5},"Bad":{}}}'
        $r = Test-RequiemConfig -Path $config
        $r.Valid | Should -BeFalse
        $r.Errors.Field | Should -Contain '$.tenant'
        $r.Errors.Field | Should -Contain '$.tenants.ok.quota_bytes'
        $r.Errors.Field | Should -Contain '$.tenants.Bad'
    }
}

Describe 'Tenant metrics' {
    It 'labels each tenant''s counters and passes promtool check metrics' {
        $metrics = Join-Path $Dir 'metrics'
        $cas = Join-Path $Dir 'metrics-cas'
        $text = Invoke-FreshPwsh -Environment @{ REQUIEM_METRICS_DIR = $metrics; REQUIEM_CAS = $cas } -Script @"
Import-Module '$ModulePath'
'one' | Add-RequiemCasObject -Tenant team-a | Out-Null
'two', 'three' | Add-RequiemCasObject -Tenant team-b | Out-Null
'four' | Add-RequiemCasObject | Out-Null
Get-RequiemMetric -Format Prometheus
"@
        $all = $text -join "`n"
        $all | Should -Match '(?m)^requiem_cas_put_total\{tenant="team-a"\} 1$'
        $all | Should -Match '(?m)^requiem_cas_put_total\{tenant="team-b"\} 2$'
        $all | Should -Match '(?m)^requiem_cas_put_total 1$'
        $json = Invoke-FreshPwsh -Environment @{ REQUIEM_METRICS_DIR = $metrics } -Script "Import-Module '$ModulePath'; Get-RequiemMetric -Format Json"
        $m = ($json -join "`n") | ConvertFrom-Json
        $m.cas_put_total | Should -Be 4
        $m.tenants.'team-b'.cas_put_total | Should -Be 2
        if (Get-Command promtool -ErrorAction Ignore) {
            $lint = $all | promtool check metrics 2>&1
            $LASTEXITCODE | Should -Be 0 -Because ($lint -join "`n")
        }
        else { Set-ItResult -Inconclusive -Because 'promtool is not installed' }
    }
}
