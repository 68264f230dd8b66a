@{
    RootModule           = 'Requiem.Pester.psm1'
    ModuleVersion        = '0.1.0'
    GUID                 = 'b7d4e2a1-3c5f-4e8a-9d6b-1f2e3a4b5c6d'
    Author               = 'Requiem for PowerShell'
    CompanyName          = 'Requiem for PowerShell'
    Copyright            = '(c) Requiem for PowerShell contributors. MIT License.'
    Description          = 'Pester 6 style assertions for Requiem: Should-BeDeterministic, Should-NotRegress, Should-MatchReplay.'
    PowerShellVersion    = '7.4'
    CompatiblePSEditions = @('Core')
    FunctionsToExport    = @('Should-BeDeterministic', 'Should-NotRegress', 'Should-MatchReplay')
    CmdletsToExport      = @()
    AliasesToExport      = @()
    VariablesToExport    = @()
    PrivateData          = @{
        PSData = @{
            Tags       = @('Pester', 'Requiem', 'Benchmark', 'Determinism')
            LicenseUri = 'https://opensource.org/licenses/MIT'
        }
    }
}
