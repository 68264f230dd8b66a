#requires -Version 7.4
<#
    Requiem.Pester: Pester 6 style assertions over Requiem's bench, drift and replay cmdlets.

    Each assertion takes its subject from the pipeline (or -Actual), passes silently, or fails the way Pester's own
    Should-* assertions do: through Pester 6's New-ShouldAssertion, so the failure is an ordinary Pester assertion
    failure reported at the file and line of the Should-* call in the test (and -ErrorAction Continue makes it a soft
    assertion). Without Pester loaded it throws a plain ErrorRecord with the id 'RequiemAssertionFailed', so the
    helpers work in any script.
#>
Set-StrictMode -Version Latest

if (-not (Get-Command Invoke-RequiemBench -ErrorAction Ignore)) {
    # Shipped beside the Requiem module (out/Requiem.Pester next to out/Requiem): import it from there if needed.
    $sibling = Join-Path (Split-Path $PSScriptRoot) 'Requiem/Requiem.psd1'
    if (Test-Path -LiteralPath $sibling) { Import-Module $sibling -Global }
    else { Import-Module Requiem -Global -ErrorAction SilentlyContinue }
}

function Get-ActualInput {
    # Pester 6 convention: one item from the pipeline is that item; several are an array; none means -Actual.
    param($Buffer, $Actual, [bool] $FromPipeline)
    if ($FromPipeline) {
        if ($Buffer.Count -eq 1) { return $Buffer[0] }
        return , @($Buffer)
    }
    return $Actual
}

function Test-RequiemType($Value, [string] $Name) {
    # The engine's types live in their own AssemblyLoadContext, so [type] literals do not resolve: match by name.
    $null -ne $Value -and ($Value.PSObject.TypeNames -contains "Requiem.Engine.Bench.$Name")
}

function Get-BecauseText([string] $Because) {
    if ([string]::IsNullOrWhiteSpace($Because)) { return '' }
    return " because $($Because.Trim().TrimEnd('.'))"
}

function Throw-RequiemAssertion {
    # Fails through Pester's own assertion path when Pester 6 is loaded (New-ShouldAssertion): the failure is an
    # ordinary Pester assertion failure ('PesterAssertionFailed', located at the Should-* call in the test), and
    # -ErrorAction / Should.ErrorAction make it a soft assertion as for Pester's own. Without Pester, a plain
    # terminating ErrorRecord 'RequiemAssertionFailed'.
    param([Parameter(Mandatory)] [string] $Message, [Parameter(Mandatory)] [System.Management.Automation.PSCmdlet] $Caller)
    $pester = Get-Command -Name New-ShouldAssertion -CommandType Function -ErrorAction Ignore |
        Where-Object { $_.ModuleName -eq 'Pester' } | Select-Object -First 1
    if (-not $pester) {
        $ex = [System.Exception]::new($Message)
        $Caller.ThrowTerminatingError([System.Management.Automation.ErrorRecord]::new($ex, 'RequiemAssertionFailed', 'InvalidResult', $null))
    }
    $assert = & $pester -Caller $Caller -As None
    try { $assert.Fail($Message) }
    catch {
        throw (Remove-HelperFrames $_)
    }
    # A soft assertion (-ErrorAction Continue): Pester recorded the failure in the running test's error list and
    # returned; give it the same trimmed stack as a hard failure.
    $test = $Caller.SessionState.PSVariable.GetValue('______parameters')
    $errors = $null
    if ($test) { $errors = $test.ErrorRecord }   # assigned, not emitted: the list must not be unrolled
    if ($errors -is [System.Collections.IList] -and $errors.Count -gt 0 -and $errors[$errors.Count - 1].Exception.Message -ceq $Message) {
        $errors[$errors.Count - 1] = Remove-HelperFrames $errors[$errors.Count - 1]
    }
}

function Remove-HelperFrames([System.Management.Automation.ErrorRecord] $Record) {
    # Pester prints an assertion's stack from the first frame outside Pester.psm1; a failure raised here would show
    # this module's frames under the test's line. A copy of the record carries the same stack minus those frames
    # (the script stack trace can only be set before the record is first thrown, hence the private field).
    $field = [System.Management.Automation.ErrorRecord].GetField('_scriptStackTrace', [System.Reflection.BindingFlags] 'NonPublic, Instance')
    if (-not $field -or -not $Record.ScriptStackTrace) { return $Record }
    $ours = [regex]::Escape($PSCommandPath)
    $frames = $Record.ScriptStackTrace -split '\r?\n' | Where-Object { $_ -notmatch ", $($ours): line \d+$" }
    $copy = [System.Management.Automation.ErrorRecord]::new($Record.Exception, $Record.FullyQualifiedErrorId, $Record.CategoryInfo.Category, $Record.TargetObject)
    $field.SetValue($copy, ($frames -join [Environment]::NewLine))
    $copy
}

function Get-FirstLineDifference([string] $Expected, [string] $Actual) {
    # The first line where two texts differ, both sides shown (control characters escaped, long lines clipped).
    $e = $Expected -split "`n"; $a = $Actual -split "`n"
    for ($i = 0; $i -lt [Math]::Max($e.Count, $a.Count); $i++) {
        $le = $i -lt $e.Count ? $e[$i] : $null; $la = $i -lt $a.Count ? $a[$i] : $null
        if ($le -cne $la) { return "line $($i + 1): expected $(Format-Line $le) but replay gave $(Format-Line $la)" }
    }
    return $null
}

function Format-Line($Line) {
    if ($null -eq $Line) { return '(no such line)' }
    $t = $Line -replace "`r", '\r' -replace "`t", '\t'
    if ($t.Length -gt 160) { $t = $t.Substring(0, 157) + '...' }
    "'$t'"
}

function Get-OptionalProperty($Object, [string] $Name) {
    # Strict mode makes a missing property an error; a stand-in or older replay object may not have it.
    if ($null -eq $Object) { return $null }
    $p = $Object.PSObject.Properties[$Name]
    if ($p) { $p.Value } else { $null }
}

function Format-Difference($d, $Replay) {
    $names = $d.PSObject.Properties.Name
    if ($names -contains 'Field' -and $names -contains 'Expected' -and $names -contains 'Actual') {
        # stdout / stderr: the first differing line from the texts when the replay carries them, else the engine's
        # description of where the bytes first differ, else the digests.
        if ($d.Field -in 'stdout', 'stderr' -and $Replay) {
            $property = $d.Field -eq 'stdout' ? 'StdoutText' : 'StderrText'
            $recorded = Get-OptionalProperty (Get-OptionalProperty $Replay 'Recorded') $property
            $replayed = Get-OptionalProperty (Get-OptionalProperty $Replay 'Replayed') $property
            if ($null -ne $recorded -and $null -ne $replayed) {
                $line = Get-FirstLineDifference $recorded $replayed
                if ($line) { return "$($d.Field) $line" }
            }
        }
        if ($names -contains 'Detail' -and $d.Detail) { return "$($d.Field) differs: $($d.Detail)" }
        return "$($d.Field): expected '$($d.Expected)' but replay gave '$($d.Actual)'"
    }
    if ($names -contains 'Field' -and $names -contains 'TextA') {
        return "$($d.Field) (run $($d.RunA) '$($d.TextA)' vs run $($d.RunB) '$($d.TextB)')"
    }
    return "$d"
}

function Should-BeDeterministic {
    <#
    .SYNOPSIS
    Asserts that a bench report, drift report or command gives the same result digest on every run.
    .DESCRIPTION
    Takes a drift report (Measure-RequiemDrift), a bench report (object or path; drift is measured from it), or
    with -Command runs the shell command line -Runs times through Invoke-RequiemBench. Fails naming the varying
    field (exit_code, stdout, stderr, output_file:<path>) and the first difference.
    .EXAMPLE
    Should-BeDeterministic -Command 'echo hello' -Runs 5
    .EXAMPLE
    Invoke-RequiemBench -Spec ./bench.json | Should-BeDeterministic -Because 'builds must be reproducible'
    #>
    [CmdletBinding(DefaultParameterSetName = 'Actual')]
    param(
        [Parameter(Position = 0, ValueFromPipeline, ParameterSetName = 'Actual')]
        $Actual,
        [Parameter(Mandatory, ParameterSetName = 'Command')]
        [string] $Command,
        [Parameter(ParameterSetName = 'Command')]
        [ValidateRange(2, 100000)]
        [int] $Runs = 5,
        [string] $Cas,
        [string] $Because
    )
    begin { $buffer = [System.Collections.Generic.List[object]]::new() }
    process { if ($MyInvocation.ExpectingInput) { $buffer.Add($Actual) } }
    end {
        $casArgs = @{}
        if ($Cas) { $casArgs.Cas = $Cas }
        if ($PSCmdlet.ParameterSetName -eq 'Command') {
            $report = Invoke-RequiemBench -Command $Command -Runs $Runs -Warmup 0 @casArgs -ProgressAction SilentlyContinue
            $subject = "'$Command'"
        }
        else {
            $report = Get-ActualInput -Buffer $buffer -Actual $Actual -FromPipeline $MyInvocation.ExpectingInput
            if ($null -eq $report) { Throw-RequiemAssertion -Caller $PSCmdlet -Message "Expected a bench or drift report to check for determinism$(Get-BecauseText $Because), but got `$null." }
            $subject = 'the bench'
        }
        $drift = if (Test-RequiemType $report 'DriftReport') { $report } else { Measure-RequiemDrift -Bench $report @casArgs }
        if ($drift.Deterministic) { return }
        $lines = foreach ($c in $drift.Cases | Where-Object { -not $_.Deterministic }) {
            $first = @($c.Differences)[0]
            $detail = if ($first) { "; first difference: $(Format-Difference $first)" } else { '' }
            "case '$($c.Name)': $($c.DistinctResults) distinct results in $($c.Runs) runs, varying $($c.VaryingFields -join ', ')$detail"
        }
        Throw-RequiemAssertion -Caller $PSCmdlet -Message ("Expected $subject to be deterministic$(Get-BecauseText $Because), but it drifted: " + ($lines -join ' | '))
    }
}

function Should-NotRegress {
    <#
    .SYNOPSIS
    Asserts that a current bench report is not a performance regression against a baseline.
    .DESCRIPTION
    Pipe the current report (object or path) or a comparison from Compare-RequiemBench. A regression means a
    slowdown over -Threshold percent that a Mann-Whitney U test finds statistically real (see Compare-RequiemBench).
    The failure message names every regressed case with its confidence statement.
    .EXAMPLE
    Invoke-RequiemBench -Spec ./bench.json | Should-NotRegress -Baseline ./baseline.json -Threshold 10
    .EXAMPLE
    Invoke-RequiemBench -Spec ./bench.json | Should-NotRegress -BaselineRef main
    #>
    [CmdletBinding()]
    param(
        [Parameter(Position = 0, ValueFromPipeline)]
        $Actual,
        $Baseline,
        [string] $BaselineRef,
        [double] $Threshold = 10,
        [double] $Confidence = 0.95,
        [string[]] $Metric = @('Wall'),
        [switch] $AllowSpecChange,
        [ValidateRange(0, 10)]
        [int] $Recheck = 0,
        [string] $Cas,
        [string] $Because
    )
    begin { $buffer = [System.Collections.Generic.List[object]]::new() }
    process { if ($MyInvocation.ExpectingInput) { $buffer.Add($Actual) } }
    end {
        $current = Get-ActualInput -Buffer $buffer -Actual $Actual -FromPipeline $MyInvocation.ExpectingInput
        if ($null -eq $current) { Throw-RequiemAssertion -Caller $PSCmdlet -Message "Expected a bench report or comparison$(Get-BecauseText $Because), but got `$null." }
        if (Test-RequiemType $current 'BenchComparison') { $comparison = $current }
        else {
            $p = @{ Current = $current; Threshold = $Threshold; Confidence = $Confidence; Metric = $Metric; AllowSpecChange = $AllowSpecChange; Recheck = $Recheck }
            if ($Cas) { $p.Cas = $Cas }
            if ($BaselineRef) { $p.BaselineRef = $BaselineRef }
            elseif ($null -ne $Baseline) { $p.Baseline = $Baseline }
            else { throw [System.ArgumentException]::new('Should-NotRegress needs -Baseline or -BaselineRef (or a comparison from Compare-RequiemBench).') }
            $comparison = Compare-RequiemBench @p
        }
        if (-not $comparison.Regressed) { return }
        $lines = foreach ($c in $comparison.Cases | Where-Object Regressed) {
            foreach ($m in $c.Metrics | Where-Object { $_.Gated -and $_.Regressed }) { "'$($c.Name)' $($m.Metric): $($m.Statement)" }
        }
        Throw-RequiemAssertion -Caller $PSCmdlet -Message ("Expected no performance regression over $($comparison.Threshold)%$(Get-BecauseText $Because), but $($comparison.RegressedCases.Count) case(s) regressed: " + ($lines -join ' | '))
    }
}

function Should-MatchReplay {
    <#
    .SYNOPSIS
    Asserts that replaying a request reproduces a recorded result (Invoke-RequiemReplay -Request -Result).
    .DESCRIPTION
    Pipe the recorded result (object or path) and give -Request. Calls Invoke-RequiemReplay and fails listing
    its Differences when Match is false; for stdout and stderr the message shows the first differing line (or where
    the bytes first differ), not only the digests.
    .EXAMPLE
    $result | Should-MatchReplay -Request ./request.json
    #>
    [CmdletBinding()]
    param(
        [Parameter(Position = 0, ValueFromPipeline)]
        [Alias('Result')]
        $Actual,
        [Parameter(Mandatory)]
        $Request,
        [string] $Because
    )
    begin { $buffer = [System.Collections.Generic.List[object]]::new() }
    process { if ($MyInvocation.ExpectingInput) { $buffer.Add($Actual) } }
    end {
        $result = Get-ActualInput -Buffer $buffer -Actual $Actual -FromPipeline $MyInvocation.ExpectingInput
        if ($null -eq $result) { Throw-RequiemAssertion -Caller $PSCmdlet -Message "Expected a recorded result to replay$(Get-BecauseText $Because), but got `$null." }
        if (-not (Get-Command Invoke-RequiemReplay -ErrorAction Ignore)) {
            throw [System.Management.Automation.CommandNotFoundException]::new('Should-MatchReplay needs Invoke-RequiemReplay from the Requiem module, which is not available in this session.')
        }
        $replay = Invoke-RequiemReplay -Request $Request -Result $result
        if ($replay.Match) { return }
        $diffs = @($replay.Differences | ForEach-Object { Format-Difference $_ -Replay $replay })
        $detail = if ($diffs.Count) { $diffs -join ' | ' } else { 'no differences listed' }
        Throw-RequiemAssertion -Caller $PSCmdlet -Message "Expected the replay to match the recorded result$(Get-BecauseText $Because), but it differs: $detail"
    }
}

Export-ModuleMember -Function Should-BeDeterministic, Should-NotRegress, Should-MatchReplay
