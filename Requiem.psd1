@{
    RootModule           = 'Requiem.PowerShell.dll'
    NestedModules        = @('Requiem.PowerShell.Loader.dll')
    ModuleVersion        = '0.1.0'
    GUID                 = '5f0c8a3e-6a2b-4d51-9b7e-3c1f2a9d7e41'
    Author               = 'Requiem for PowerShell'
    CompanyName          = 'Requiem for PowerShell'
    Copyright            = '(c) Requiem for PowerShell contributors. MIT License.'
    Description          = 'Deterministic command execution, BLAKE3 content-addressable storage, replay validation, proof bundles and benchmark gates.'
    PowerShellVersion    = '7.4'
    CompatiblePSEditions = @('Core')
    FormatsToProcess     = @('Requiem.format.ps1xml')
    TypesToProcess       = @('Requiem.types.ps1xml')
    FunctionsToExport    = @()
    AliasesToExport      = @()
    VariablesToExport    = @()
    CmdletsToExport      = @(
        # digest
        'Get-RequiemDigest'
        'Test-RequiemDigest'

        # config, metrics
        'Test-RequiemConfig'
        'Get-RequiemMetric'

        # cas
        'Add-RequiemCasObject'
        'Get-RequiemCasObject'
        'Export-RequiemCasObject'
        'Test-RequiemCas'
        'Sync-RequiemCas'
        'Get-RequiemCasStatistic'
        'Optimize-RequiemCas'
        'Set-RequiemCasRef'
        'Get-RequiemCasRef'
        'Remove-RequiemCasRef'
        'Get-RequiemCacheEntry'

        # exec, sandbox, health, policy
        'Invoke-RequiemExec'
        'Invoke-RequiemReplay'
        'Get-RequiemHealth'
        'Test-RequiemHealth'
        'Get-RequiemPolicy'
        'Test-RequiemPolicy'
        'Test-RequiemReplacement'
        'Get-RequiemDualDiff'

        # bench, drift
        'Invoke-RequiemBench'
        'Compare-RequiemBench'
        'Measure-RequiemDrift'
        'Write-RequiemCiReport'

        # proof
        'New-RequiemSigningKey'
        'New-RequiemProof'
        'Test-RequiemProof'
        'Export-RequiemProof'
        'Import-RequiemProof'

        # audit
        'Get-RequiemAuditLog'
        'Test-RequiemAuditLog'
    )
    PrivateData          = @{
        PSData = @{
            Tags         = @('BLAKE3', 'CAS', 'ContentAddressable', 'Deterministic', 'Sandbox', 'Replay', 'Benchmark', 'Proof', 'Pester', 'CI', 'PSEdition_Core', 'Linux', 'Windows', 'MacOS')
            # ProjectUri and LicenseUri: build.ps1 -Task Package adds them from $env:REQUIEM_PROJECT_URI, the public
            # address of the repository being published (no address is invented here).
            # build.ps1 -Task Package fills this from CHANGELOG.md (the section for ModuleVersion).
            ReleaseNotes = ''
        }
    }
}
