# CI gates as a pipeline sees them: proof and CAS verification reported like bench regressions (GitHub Actions
# annotations + step summary, Azure DevOps logging commands), gate outcomes in $env:GITHUB_OUTPUT, and the example
# scripts under examples/ci run against the built module exactly as the example workflows call them.
BeforeAll {
    . (Join-Path $PSScriptRoot 'TestSetup.ps1')
    . (Join-Path $PSScriptRoot 'ProofFixture.ps1')
    $script:Dir = New-TestDirectory
    $script:Examples = Join-Path $RepoRoot 'examples'

    # A valid proof and a tampered copy (one byte of the request digest changed), over the same store.
    $script:ProofCas = Join-Path $Dir 'proof-cas'
    $fx = New-ProofFixture -Cas $ProofCas
    $script:GoodProof = Join-Path $Dir 'good.proof.json'
    New-RequiemProof -Request $fx.Request -Result $fx.Result -Cas $ProofCas -OutFile $GoodProof | Out-Null
    $script:BadProof = Join-Path $Dir 'tampered.proof.json'
    $text = Get-Content -LiteralPath $GoodProof -Raw
    $digest = $fx.RequestDigest
    $flipped = ($digest[0] -eq 'a' ? 'b' : 'a') + $digest.Substring(1)
    [IO.File]::WriteAllText($BadProof, $text.Replace($digest, $flipped))

    function script:New-CorruptStore {
        # A store of three objects, one with a flipped byte; returns the store root and the corrupt object's hash.
        $cas = Join-Path $Dir ('cas-' + [guid]::NewGuid().ToString('n'))
        $objects = 1..3 | ForEach-Object { Add-RequiemCasObject -Cas $cas -InputObject "object $_ $('x' * 100)" -Compress None }
        $victim = $objects[1]
        $bytes = [IO.File]::ReadAllBytes($victim.ObjectPath)
        $bytes[5] = $bytes[5] -bxor 0x20
        [IO.File]::WriteAllBytes($victim.ObjectPath, $bytes)
        [pscustomobject]@{ Root = $cas; Hash = $victim.Hash }
    }

    function script:Invoke-CiScript {
        # Runs a pwsh script file as a CI runner does (pwsh -File), with the CI's environment and temp files for
        # GITHUB_OUTPUT / GITHUB_STEP_SUMMARY; returns exit code, output, and the two files' contents.
        param([string] $Script, [string[]] $Arguments, [ValidateSet('GitHub', 'AzureDevOps')] [string] $Ci)
        $outputFile = Join-Path $Dir ('out-' + [guid]::NewGuid().ToString('n'))
        $summaryFile = Join-Path $Dir ('summary-' + [guid]::NewGuid().ToString('n'))
        $env = if ($Ci -eq 'GitHub') { @{ GITHUB_ACTIONS = 'true'; TF_BUILD = $null; GITHUB_OUTPUT = $outputFile; GITHUB_STEP_SUMMARY = $summaryFile; AGENT_TEMPDIRECTORY = $null } }
               else { @{ GITHUB_ACTIONS = $null; TF_BUILD = 'True'; GITHUB_OUTPUT = $null; GITHUB_STEP_SUMMARY = $null; AGENT_TEMPDIRECTORY = $Dir } }
        $saved = @{}
        foreach ($k in $env.Keys) { $saved[$k] = [Environment]::GetEnvironmentVariable($k); [Environment]::SetEnvironmentVariable($k, $env[$k]) }
        try {
            $out = & $script:Pwsh -NoProfile -NonInteractive -File $Script @Arguments -ModulePath $ModulePath 2>&1
            $code = $LASTEXITCODE
        }
        finally { foreach ($k in $saved.Keys) { [Environment]::SetEnvironmentVariable($k, $saved[$k]) } }
        [pscustomobject]@{
            ExitCode = $code
            Text     = ($out | ForEach-Object { "$_" }) -join "`n"
            Outputs  = (Test-Path $outputFile) ? (Get-Content -LiteralPath $outputFile -Raw) : ''
            Summary  = (Test-Path $summaryFile) ? (Get-Content -LiteralPath $summaryFile -Raw) : ''
        }
    }

    function script:ConvertFrom-GitHubOutput([string] $Text) {
        # Parses GitHub's multiline-safe step-output format; a later value for a name overrides an earlier one.
        $values = @{}
        $lines = $Text -split "`n"
        for ($i = 0; $i -lt $lines.Count; $i++) {
            if ($lines[$i] -match '^(?<name>[^<=]+)<<(?<delim>.+)$') {
                $name = $Matches.name; $delim = $Matches.delim; $value = @()
                for ($i++; $lines[$i] -ne $delim; $i++) { $value += $lines[$i] }
                $values[$name] = $value -join "`n"
            }
            elseif ($lines[$i] -match '^(?<name>[^=]+)=(?<value>.*)$') { $values[$Matches.name] = $Matches.value }
        }
        $values
    }
}
AfterAll { Remove-Item -Recurse -Force $script:Dir -ErrorAction Ignore }

Describe 'Write-RequiemCiReport for proof and CAS verification' {
    It 'reports a tampered proof: ::error annotation, summary row and proof_valid=false under GITHUB_ACTIONS=true' {
        $summary = Join-Path $Dir 'proof-summary.md'; $outputs = Join-Path $Dir 'proof-outputs.txt'
        $out = Invoke-FreshPwsh -Environment @{ GITHUB_ACTIONS = 'true'; TF_BUILD = $null; GITHUB_STEP_SUMMARY = $summary; GITHUB_OUTPUT = $outputs } -Script @"
Import-Module '$ModulePath'
Test-RequiemProof -LiteralPath '$GoodProof', '$BadProof' -Cas '$ProofCas' | Write-RequiemCiReport
'end'
"@
        $text = $out -join "`n"
        $text | Should -Match "(?m)^::error title=Proof invalid%3A $([regex]::Escape($BadProof))::merkle_root: "
        $text | Should -Not -Match ([regex]::Escape("Proof invalid%3A $GoodProof"))
        $md = Get-Content -LiteralPath $summary -Raw
        $md | Should -Match "(?m)^\| $([regex]::Escape($BadProof)) \| [0-9a-f]{64} \| no \| \d+ \| :x: merkle_root: "
        $md | Should -Match "(?m)^\| $([regex]::Escape($GoodProof)) \| [0-9a-f]{64} \| no \| \d+ \| :white_check_mark: valid \|"
        $o = ConvertFrom-GitHubOutput (Get-Content -LiteralPath $outputs -Raw)
        $o.proof_valid | Should -Be 'false'
        $o.invalid_proofs | Should -Be $BadProof
    }

    It 'reports a corrupt CAS: ::error annotation naming the object, summary row and cas_valid=false' {
        $store = New-CorruptStore
        $summary = Join-Path $Dir 'cas-summary.md'; $outputs = Join-Path $Dir 'cas-outputs.txt'
        $out = Invoke-FreshPwsh -Environment @{ GITHUB_ACTIONS = 'true'; TF_BUILD = $null; GITHUB_STEP_SUMMARY = $summary; GITHUB_OUTPUT = $outputs } -Script @"
Import-Module '$ModulePath'
Test-RequiemCas -All -Cas '$($store.Root)' | Write-RequiemCiReport
"@
        ($out -join "`n") | Should -Match "(?m)^::error title=Corrupt CAS object%3A $($store.Hash)::"
        $md = Get-Content -LiteralPath $summary -Raw
        $md | Should -Match '### :x: CAS store invalid'
        $md | Should -Match "(?m)^\| $($store.Hash) \| :x: corrupt: "
        $o = ConvertFrom-GitHubOutput (Get-Content -LiteralPath $outputs -Raw)
        $o.cas_valid | Should -Be 'false'
        $o.cas_corrupt | Should -Be '1'
        $o.cas_checked | Should -Be '3'
    }

    It 'writes ##vso[task.logissue type=error] lines for a tampered proof and a corrupt CAS under TF_BUILD=True' {
        $store = New-CorruptStore
        $out = Invoke-FreshPwsh -Environment @{ GITHUB_ACTIONS = $null; TF_BUILD = 'True'; AGENT_TEMPDIRECTORY = $Dir; GITHUB_OUTPUT = $null } -Script @"
Import-Module '$ModulePath'
Test-RequiemProof -LiteralPath '$BadProof' -Cas '$ProofCas' | Write-RequiemCiReport
Test-RequiemCas -All -Cas '$($store.Root)' | Write-RequiemCiReport
"@
        $text = $out -join "`n"
        $text | Should -Match "(?m)^##vso\[task\.logissue type=error]Proof invalid: $([regex]::Escape($BadProof)): merkle_root: "
        $text | Should -Match "(?m)^##vso\[task\.logissue type=error\]Corrupt CAS object: $($store.Hash): "
        $text | Should -Match '(?m)^##vso\[task\.uploadsummary\]'
    }

    It 'refuses other input with UnsupportedInputType naming what it accepts' {
        $err = { Write-RequiemCiReport -InputObject ([datetime]::Now) -Provider GitHub -ErrorAction Stop } | Should -Throw -PassThru
        $err.FullyQualifiedErrorId | Should -Be 'UnsupportedInputType,Requiem.PowerShell.WriteRequiemCiReportCommand'
        $err.Exception.Message | Should -Match 'proof verification \(Test-RequiemProof\) or CAS verification \(Test-RequiemCas\)'
    }
}

Describe 'Gates write their outcome to GITHUB_OUTPUT' {
    BeforeEach {
        $script:Outputs = Join-Path $Dir ('gh-output-' + [guid]::NewGuid().ToString('n'))
        $script:SavedOutput = $env:GITHUB_OUTPUT
        $env:GITHUB_OUTPUT = $Outputs
    }
    AfterEach { $env:GITHUB_OUTPUT = $SavedOutput }

    It 'Test-RequiemCas -FailOnInvalid writes the report, then stops with CasInvalid; cas_valid=false' {
        $store = New-CorruptStore
        $report = $null
        $err = { $script:report = Test-RequiemCas -All -Cas $store.Root -FailOnInvalid } | Should -Throw -PassThru
        $err.FullyQualifiedErrorId | Should -Be 'CasInvalid,Requiem.PowerShell.TestRequiemCasCommand'
        $err.Exception.Message | Should -BeLike "The CAS at '$($store.Root)' is invalid: 1 corrupt and 0 missing object(s) of 3 checked; first corrupt: $($store.Hash) (*"
        $err.TargetObject | Should -Be $store.Root
        $script:report.Valid | Should -BeFalse
        $o = ConvertFrom-GitHubOutput (Get-Content -LiteralPath $Outputs -Raw)
        $o.cas_valid | Should -Be 'false'
    }

    It 'Test-RequiemCas -FailOnInvalid passes a valid store through; cas_valid=true' {
        $cas = Join-Path $Dir ('cas-ok-' + [guid]::NewGuid().ToString('n'))
        Add-RequiemCasObject -Cas $cas -InputObject 'fine' | Out-Null
        (Test-RequiemCas -All -Cas $cas -FailOnInvalid).Valid | Should -BeTrue
        (ConvertFrom-GitHubOutput (Get-Content -LiteralPath $Outputs -Raw)).cas_valid | Should -Be 'true'
    }

    It 'Test-RequiemProof -FailOnInvalid: proof_valid=false and the invalid path' {
        { Test-RequiemProof -LiteralPath $GoodProof, $BadProof -Cas $ProofCas -FailOnInvalid } |
            Should -Throw -ErrorId 'ProofInvalid,Requiem.PowerShell.TestRequiemProofCommand'
        $o = ConvertFrom-GitHubOutput (Get-Content -LiteralPath $Outputs -Raw)
        $o.proof_valid | Should -Be 'false'
        $o.invalid_proofs | Should -Be $BadProof
    }

    It 'writes the outcome once for many piped reports, not once per report' {
        $proofs = 1..30 | ForEach-Object { $GoodProof }
        $proofs | Test-RequiemProof -Cas $ProofCas -FailOnInvalid | Out-Null
        $text = Get-Content -LiteralPath $Outputs -Raw
        ([regex]::Matches($text, '(?m)^proof_valid<<')).Count | Should -Be 1
        (ConvertFrom-GitHubOutput $text).proof_valid | Should -Be 'true'
    }

    It 'still writes the outcome when an error stops the pipeline before the cmdlet ends' {
        $ErrorActionPreference = 'Stop'
        { @((Test-RequiemProof -LiteralPath $GoodProof -Cas $ProofCas), 'no-such-report.json') | Write-RequiemCiReport -Provider None } | Should -Throw
        (ConvertFrom-GitHubOutput (Get-Content -LiteralPath $Outputs -Raw)).proof_valid | Should -Be 'true'
    }

    It 'writes nothing without the gate switch, and nothing when GITHUB_OUTPUT is not set' {
        Test-RequiemProof -LiteralPath $BadProof -Cas $ProofCas | Out-Null
        Test-Path $Outputs | Should -BeFalse
        $env:GITHUB_OUTPUT = $null
        { Test-RequiemProof -LiteralPath $BadProof -Cas $ProofCas -FailOnInvalid } | Should -Throw -ErrorId 'ProofInvalid,*'
        Test-Path $Outputs | Should -BeFalse
    }

    It 'keeps a value with a newline inside its own output (multiline-safe format)' {
        $weird = Join-Path $Dir "odd`nname.proof.json"
        Copy-Item -LiteralPath $BadProof -Destination $weird
        { Test-RequiemProof -LiteralPath $weird -Cas $ProofCas -FailOnInvalid } | Should -Throw -ErrorId 'ProofInvalid,*'
        $o = ConvertFrom-GitHubOutput (Get-Content -LiteralPath $Outputs -Raw)
        $o.invalid_proofs | Should -Be $weird
        $o.Keys | Should -Not -Contain 'name.proof.json'
    }
}

Describe 'CI example scripts (examples/ci) against the built module' {
    BeforeAll {
        $script:BenchDir = Join-Path $Dir 'bench'
        New-Item -ItemType Directory -Path $BenchDir | Out-Null
        $script:Spec = Join-Path $BenchDir 'bench.json'
        @{ name = 'ci'; warmup = 1; runs = 8; cases = @(@{ name = 'work'; command = 'sh'; argv = @('./work.sh'); cwd = $BenchDir }) } |
            ConvertTo-Json -Depth 5 | Set-Content -LiteralPath $Spec
        Set-Content -LiteralPath (Join-Path $BenchDir 'work.sh') -Value 'sleep 0.01'
        $script:Baseline = Join-Path $BenchDir 'baseline.json'
        Invoke-RequiemBench -Spec $Spec -OutFile $Baseline -Cas (Join-Path $Dir 'bench-cas') | Out-Null
        # The same spec after the code under test got 6x slower, measured right after the baseline.
        Set-Content -LiteralPath (Join-Path $BenchDir 'work.sh') -Value 'sleep 0.06'
        $script:Slow = Join-Path $BenchDir 'slow.json'
        Invoke-RequiemBench -Spec $Spec -OutFile $Slow -Cas (Join-Path $Dir 'bench-cas') | Out-Null
        Set-Content -LiteralPath (Join-Path $BenchDir 'work.sh') -Value 'sleep 0.01'
        $script:BenchGate = Join-Path $Examples 'ci/bench-gate.ps1'
        $script:ProofCheck = Join-Path $Examples 'ci/proof-check.ps1'
        $script:CasVerify = Join-Path $Examples 'ci/cas-verify.ps1'
    }

    It 'bench-gate.ps1 passes an unchanged bench and fails a 6x slowdown (GitHub: annotation, summary, outputs)' {
        $env:REQUIEM_CAS = Join-Path $Dir 'bench-cas'
        try {
            $ok = Invoke-CiScript -Ci GitHub -Script $BenchGate -Arguments @('-Spec', $Spec, '-Baseline', $Baseline, '-Threshold', '200', '-OutFile', (Join-Path $BenchDir 'ok.json'))
        }
        finally { $env:REQUIEM_CAS = $null }
        $ok.ExitCode | Should -Be 0 -Because $ok.Text
        (ConvertFrom-GitHubOutput $ok.Outputs).regressed | Should -Be 'false'
        $bad = Invoke-CiScript -Ci GitHub -Script $BenchGate -Arguments @('-Current', $Slow, '-Baseline', $Baseline, '-Threshold', '100', '-OutFile', (Join-Path $BenchDir 'bad.json'))
        $bad.ExitCode | Should -Be 1 -Because $bad.Text
        $bad.Text | Should -Match '(?m)^::error title=Performance regression%3A work::wall_ms '
        $bad.Text | Should -Match 'Performance regression in 1 case'
        $bad.Summary | Should -Match '(?m)^\| work \| wall_ms \| '
        $o = ConvertFrom-GitHubOutput $bad.Outputs
        $o.regressed | Should -Be 'true'
        $o.regressed_cases | Should -Be 'work'
        Test-Path (Join-Path $BenchDir 'bad.json') | Should -BeTrue
    }

    It 'bench-gate.ps1 under TF_BUILD=True writes ##vso[task.logissue type=error] for the regression' {
        $r = Invoke-CiScript -Ci AzureDevOps -Script $BenchGate -Arguments @('-Current', $Slow, '-Baseline', $Baseline, '-Threshold', '100', '-OutFile', (Join-Path $BenchDir 'az.json'))
        $r.ExitCode | Should -Be 1
        $r.Text | Should -Match '(?m)^##vso\[task\.logissue type=error\]Performance regression: work: wall_ms '
        $r.Text | Should -Match '(?m)^##vso\[task\.uploadsummary\]'
    }

    It 'proof-check.ps1 passes a valid proof and fails a tampered one (<Ci>)' -ForEach @(
        @{ Ci = 'GitHub'; Error = '(?m)^::error title=Proof invalid%3A .*tampered\.proof\.json::merkle_root' }
        @{ Ci = 'AzureDevOps'; Error = '(?m)^##vso\[task\.logissue type=error\]Proof invalid: .*tampered\.proof\.json: merkle_root' }
    ) {
        $ok = Invoke-CiScript -Ci $Ci -Script $ProofCheck -Arguments @('-Path', (Join-Path $Dir 'good.*.json'), '-Cas', $ProofCas)
        $ok.ExitCode | Should -Be 0 -Because $ok.Text
        $ok.Text | Should -Match "valid: $([regex]::Escape($GoodProof))"
        $bad = Invoke-CiScript -Ci $Ci -Script $ProofCheck -Arguments @('-Path', $BadProof, '-Cas', $ProofCas)
        $bad.ExitCode | Should -Be 1
        $bad.Text | Should -Match $Error
        $bad.Text | Should -Match 'is invalid'
        if ($Ci -eq 'GitHub') {
            $bad.Summary | Should -Match '### :x: Proof invalid'
            (ConvertFrom-GitHubOutput $bad.Outputs).proof_valid | Should -Be 'false'
            (ConvertFrom-GitHubOutput $ok.Outputs).proof_valid | Should -Be 'true'
        }
    }

    It 'proof-check.ps1 fails when the pattern matches no proof' {
        $r = Invoke-CiScript -Ci GitHub -Script $ProofCheck -Arguments @('-Path', (Join-Path $Dir 'nothing-*.proof.json'), '-Cas', $ProofCas)
        $r.ExitCode | Should -Be 1
        $r.Text | Should -Match 'nothing-\*\.proof\.json'
    }

    It 'cas-verify.ps1 passes a valid store and fails a corrupt one (<Ci>)' -ForEach @(
        @{ Ci = 'GitHub'; Error = '(?m)^::error title=Corrupt CAS object%3A {0}::' }
        @{ Ci = 'AzureDevOps'; Error = '(?m)^##vso\[task\.logissue type=error\]Corrupt CAS object: {0}: ' }
    ) {
        $good = Join-Path $Dir ('cas-good-' + [guid]::NewGuid().ToString('n'))
        Add-RequiemCasObject -Cas $good -InputObject 'intact' | Out-Null
        $ok = Invoke-CiScript -Ci $Ci -Script $CasVerify -Arguments @('-Cas', $good)
        $ok.ExitCode | Should -Be 0 -Because $ok.Text
        $ok.Text | Should -Match '1 object\(s\) verified in '
        $store = New-CorruptStore
        $bad = Invoke-CiScript -Ci $Ci -Script $CasVerify -Arguments @('-Cas', $store.Root)
        $bad.ExitCode | Should -Be 1
        $bad.Text | Should -Match ($Error -f $store.Hash)
        $bad.Text | Should -Match 'is invalid: 1 corrupt'
        if ($Ci -eq 'GitHub') {
            $bad.Summary | Should -Match "(?m)^\| $($store.Hash) \| :x: corrupt"
            (ConvertFrom-GitHubOutput $bad.Outputs).cas_valid | Should -Be 'false'
        }
    }

    It '<File> runs only scripts that exist, with parameters they have, for all three gates' -ForEach @(
        @{ File = 'github-actions.yml' }
        @{ File = 'azure-pipelines.yml' }
    ) {
        $yml = Get-Content -LiteralPath (Join-Path $Examples $File) -Raw
        $calls = [regex]::Matches($yml, '\./(?<script>examples/ci/[\w.-]+\.ps1)(?<args>[^\r\n]*)')
        @($calls.Groups | Where-Object Name -eq 'script' | ForEach-Object { Split-Path $_.Value -Leaf } | Sort-Object -Unique) |
            Should -Be @('bench-gate.ps1', 'cas-verify.ps1', 'proof-check.ps1')
        foreach ($call in $calls) {
            $path = Join-Path $RepoRoot $call.Groups['script'].Value
            Test-Path -LiteralPath $path | Should -BeTrue -Because "$File runs $($call.Groups['script'].Value)"
            $known = (Get-Command $path).Parameters.Keys
            foreach ($name in [regex]::Matches($call.Groups['args'].Value, '(?<=\s)-(\w+)') | ForEach-Object { $_.Groups[1].Value }) {
                $known | Should -Contain $name -Because "$File passes -$name to $(Split-Path $path -Leaf)"
            }
        }
    }
}
