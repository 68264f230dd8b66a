# The Requiem.Pester assertions fail as Pester's own Should-* do: a PesterAssertionFailed record located at the
# Should-* call in the test, with none of the helper module's frames, and Should-MatchReplay shows the differing text.
# Each case runs a real Pester session in a fresh pwsh over a generated test file, and reads its result objects.
BeforeAll {
    . (Join-Path $PSScriptRoot 'TestSetup.ps1')
    $script:Dir = New-TestDirectory
    $script:PesterModule = (Get-Module Pester).Path
    $script:HelperModule = Join-Path $RepoRoot 'out/Requiem.Pester/Requiem.Pester.psd1'

    function script:Invoke-InnerPester {
        # Runs -TestBody as a test file under Pester in a fresh pwsh; returns one object per test.
        param([string] $TestBody)
        $file = Join-Path $Dir ('Inner' + [guid]::NewGuid().ToString('n') + '.Tests.ps1')
        Set-Content -LiteralPath $file -Value $TestBody
        $json = Invoke-FreshPwsh -AllowFailure -Environment @{ REQUIEM_CAS = (Join-Path $Dir 'cas') } -Script @"
Import-Module '$PesterModule'
`$c = New-PesterConfiguration
`$c.Run.Path = '$file'
`$c.Run.PassThru = `$true
`$c.Output.Verbosity = 'None'
`$r = Invoke-Pester -Configuration `$c
@(`$r.Tests | ForEach-Object {
    `$e = @(`$_.ErrorRecord)[0]
    [pscustomobject]@{
        Name = `$_.Name; Result = `$_.Result
        ErrorId = `$e.FullyQualifiedErrorId
        File = `$e.TargetObject.File; Line = `$e.TargetObject.Line
        Message = `$e.DisplayErrorMessage; Stack = `$e.DisplayStackTrace
        AfterSoftFailure = [bool] `$global:afterSoft
    }
}) | ConvertTo-Json -Depth 3 -AsArray
"@
        $tests = ($json -join "`n") | ConvertFrom-Json
        [pscustomobject]@{ File = $file; Lines = Get-Content -LiteralPath $file; Tests = $tests }
    }
    function script:Get-LineOf($Run, [string] $Text) {
        for ($i = 0; $i -lt $Run.Lines.Count; $i++) { if ($Run.Lines[$i].Contains($Text)) { return $i + 1 } }
        throw "no line contains $Text"
    }
}
AfterAll { Remove-Item -Recurse -Force $script:Dir -ErrorAction Ignore }

Describe 'Requiem.Pester failures are Pester assertion failures' {
    BeforeAll {
        $script:Run = Invoke-InnerPester @"
BeforeAll {
    Import-Module '$ModulePath'
    Import-Module '$HelperModule'
    function global:Invoke-RequiemReplay { param(`$Request, `$Result)
        [pscustomobject]@{ Match = `$false; Differences = @([pscustomobject]@{ Field = 'stdout'; Expected = 'e1'; Actual = 'a1'
            Detail = 'first difference at byte 4 (line 2; 9 vs 9 bytes): expected "one\ntwo", actual "one\nTWO"' }) }
    }
}
Describe 'inner' {
    It 'drift' {
        Should-BeDeterministic -Command 'date +%N' -Runs 2   # DRIFT
    }
    It 'replay' {
        'recorded' | Should-MatchReplay -Request 'req.json' -Because 'replays must be exact'   # REPLAY
    }
    It 'soft' {
        Should-BeDeterministic -Command 'date +%N' -Runs 2 -ErrorAction Continue   # SOFT
        `$global:afterSoft = `$true
    }
}
"@
    }

    It 'reports <Name> as PesterAssertionFailed at the Should-* line of the test file, without the helper''s frames' -ForEach @(
        @{ Name = 'drift'; Marker = '# DRIFT' }
        @{ Name = 'replay'; Marker = '# REPLAY' }
        @{ Name = 'soft'; Marker = '# SOFT' }
    ) {
        $t = $Run.Tests | Where-Object Name -eq $Name
        $t.Result | Should -Be 'Failed'
        $t.ErrorId | Should -Be 'PesterAssertionFailed'
        $t.File | Should -Be $Run.File
        $t.Line | Should -Be (Get-LineOf $Run $Marker)
        $t.Stack | Should -BeLike "at *$Marker, $($Run.File):$(Get-LineOf $Run $Marker)"
        $t.Stack | Should -Not -Match 'Requiem\.Pester\.psm1'
        $t.Message | Should -Not -Match '^(Exception|RuntimeException):'
    }

    It 'lets a soft assertion (-ErrorAction Continue) record the failure and run on' {
        ($Run.Tests | Where-Object Name -eq 'soft').AfterSoftFailure | Should -BeTrue
    }

    It 'Should-MatchReplay names the differing text, not only digests' {
        $t = $Run.Tests | Where-Object Name -eq 'replay'
        $t.Message | Should -Be 'Expected the replay to match the recorded result because replays must be exact, but it differs: stdout differs: first difference at byte 4 (line 2; 9 vs 9 bytes): expected "one\ntwo", actual "one\nTWO"'
    }
}

Describe 'Should-MatchReplay against a real replay' {
    It 'shows the first differing stdout text of a command that prints the time' {
        $run = Invoke-InnerPester @"
BeforeAll { Import-Module '$ModulePath'; Import-Module '$HelperModule' }
Describe 'inner' {
    It 'clock' {
        `$req = Join-Path '$Dir' 'clock.json'
        @{ command = '/bin/sh'; argv = @('-c', 'printf "one\ntwo\n%s\n" `$(date +%N)'); workspace_root = '$Dir' } | ConvertTo-Json | Set-Content `$req
        Invoke-RequiemExec -Request `$req | Should-MatchReplay -Request `$req   # CLOCK
    }
}
"@
        $t = $run.Tests[0]
        $t.ErrorId | Should -Be 'PesterAssertionFailed'
        $t.Line | Should -Be (Get-LineOf $run '# CLOCK')
        # Two clock readings can share leading digits, so the first differing byte is 8 or later on line 3.
        $t.Message | Should -Match '^Expected the replay to match the recorded result, but it differs: stdout (differs: first difference at byte \d+ \(line 3; 18 vs 18 bytes\): expected "one\\ntwo\\n\d+\\n", actual "one\\ntwo\\n\d+\\n"|line 3: expected ''\d+'' but replay gave ''\d+'')$'
    }
}
