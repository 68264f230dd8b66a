<#
.SYNOPSIS
    CI bench gate: measures a bench spec (or takes a report already measured) and fails the step when a case is
    slower than the baseline by more than -Threshold percent with statistical confidence.
.DESCRIPTION
    Under GitHub Actions (GITHUB_ACTIONS=true) it writes ::error annotations, a step-summary table and the step
    outputs regressed / regressed_cases; under Azure DevOps (TF_BUILD=True) ##vso logging commands and a summary.
    Exit code 0 when nothing regressed, 1 on a regression (the PerformanceRegression error) or any other error.
.EXAMPLE
    ./examples/ci/bench-gate.ps1 -Spec ./bench/ci.bench.json -Baseline ./bench/baseline.json
#>
[CmdletBinding(DefaultParameterSetName = 'Spec')]
param(
    # The bench spec to measure now.
    [Parameter(Mandatory, ParameterSetName = 'Spec')] [string] $Spec,
    # A report measured earlier (Invoke-RequiemBench -OutFile), instead of -Spec.
    [Parameter(Mandatory, ParameterSetName = 'Current')] [string] $Current,
    # The baseline report (a committed JSON file, or one restored from a cache or artifact).
    [Parameter(Mandatory)] [string] $Baseline,
    [double] $Threshold = 10,
    # Where the comparison JSON is written (upload it as an artifact).
    [string] $OutFile = 'bench-comparison.json',
    # The Requiem module to import: a name, or the path of Requiem.psd1.
    [string] $ModulePath = 'Requiem'
)
$ErrorActionPreference = 'Stop'
Import-Module $ModulePath

$report = if ($PSCmdlet.ParameterSetName -eq 'Spec') { Invoke-RequiemBench -Spec $Spec } else { $Current }
$comparison = $report | Compare-RequiemBench -Baseline $Baseline -Threshold $Threshold -OutFile $OutFile -CiSummary -FailOnRegression
$comparison.ToSummaryString()
