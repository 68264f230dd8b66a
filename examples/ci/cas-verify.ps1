<#
.SYNOPSIS
    CI store check: re-hashes the objects of a CAS store and fails the step when one is corrupt or missing.
.DESCRIPTION
    Under GitHub Actions it writes an ::error annotation per corrupt or missing object, a step-summary table and the
    step outputs cas_valid / cas_checked / cas_corrupt / cas_missing; under Azure DevOps ##vso[task.logissue] lines
    and a summary. Exit code 0 when the store is valid, 1 otherwise (CasInvalid).
.EXAMPLE
    ./examples/ci/cas-verify.ps1 -Cas ./.requiem/cas -Sample 500
#>
[CmdletBinding()]
param(
    # The store (default: $env:REQUIEM_CAS or the user's store).
    [string] $Cas,
    # Check this many objects per run (continuing where the last run stopped) instead of all of them.
    [ValidateRange(0, [int]::MaxValue)] [int] $Sample = 0,
    [string] $ModulePath = 'Requiem'
)
$ErrorActionPreference = 'Stop'
Import-Module $ModulePath

$verify = @{ FailOnInvalid = $true }
if ($Cas) { $verify.Cas = $Cas }
if ($Sample -gt 0) { $verify.Sample = $Sample } else { $verify.All = $true }
Test-RequiemCas @verify | Write-RequiemCiReport -PassThru | ForEach-Object { "$($_.Checked) object(s) verified in $($_.Root)" }
