<#
.SYNOPSIS
    CI proof check: verifies proof bundles (canonical form, Merkle root, signature, every CAS object they name) and
    fails the step when one is invalid.
.DESCRIPTION
    Under GitHub Actions it writes an ::error annotation per invalid proof, a step-summary row per proof and the step
    outputs proof_valid / invalid_proofs; under Azure DevOps ##vso[task.logissue] lines and a summary.
    Exit code 0 when every proof verifies, 1 otherwise (ProofInvalid, or a path that does not exist).
.EXAMPLE
    ./examples/ci/proof-check.ps1 -Path ./proofs/*.proof.json -Cas ./.requiem/cas -PublicKey ./keys/release.pub.pem
#>
[CmdletBinding()]
param(
    # Proof files; wildcards allowed (a pattern that matches nothing is an error).
    [Parameter(Mandatory)] [string[]] $Path,
    # The CAS holding the objects the proofs name (default: $env:REQUIEM_CAS or the user's store).
    [string] $Cas,
    # Public keys a signature must verify with; when given, unsigned proofs are invalid.
    [string[]] $PublicKey,
    [string] $ModulePath = 'Requiem'
)
$ErrorActionPreference = 'Stop'
Import-Module $ModulePath

$check = @{ Path = $Path; FailOnInvalid = $true }
if ($Cas) { $check.Cas = $Cas }
if ($PublicKey) { $check.PublicKey = $PublicKey; $check.RequireSignature = $true }
Test-RequiemProof @check | Write-RequiemCiReport -PassThru | ForEach-Object { "valid: $($_.Path)" }
