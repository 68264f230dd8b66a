# The default views as a CI log shows them: 80 columns, no terminal. Every column header of a table view is printed
# whole on the header line (none split over two lines, none dropped), and the first row names its file or command.
BeforeAll {
    . (Join-Path $PSScriptRoot 'TestSetup.ps1')
    $script:Work = New-TestDirectory
    $script:SavedCas = $env:REQUIEM_CAS
    $env:REQUIEM_CAS = Join-Path $Work 'cas'
    Push-Location $Work
    Set-Content -LiteralPath (Join-Path $Work 'first-input.txt') -Value 'hello'
    Set-Content -LiteralPath (Join-Path $Work 'second-input-with-a-long-name.txt') -Value 'world'

    $script:Requests = @(
        @{ command = '/bin/sh'; argv = @('-c', 'echo first'); workspace_root = $Work }
        @{ command = '/bin/echo'; argv = @('second'); workspace_root = $Work }
    )
    $script:Results = $Requests | Invoke-RequiemExec -WarningAction SilentlyContinue
    $script:ProofFile = Join-Path $Work 'run.proof.json'
    $script:Proof = New-RequiemProof -Result $Results[0] -OutFile $ProofFile
    $script:Bench = Invoke-RequiemBench -Command 'true' -Name 'true-command' -Runs 3 -Warmup 1
    # A run whose stdout differs on every run: its replay has differences.
    $script:Varying = Invoke-RequiemExec -Request @{ command = '/bin/cat'; argv = @('/proc/sys/kernel/random/uuid'); workspace_root = $Work } -WarningAction SilentlyContinue

    function script:Remove-Ansi([string] $Text) { $Text -replace "`e\[[0-9;?]*[A-Za-z]", '' }

    function script:Get-TableLabels([object] $Item) {
        $type = $Item.PSObject.TypeNames[0]
        $view = (Get-FormatData -TypeName $type -PowerShellVersion $PSVersionTable.PSVersion).FormatViewDefinition |
            Where-Object { $_.Control -is [System.Management.Automation.TableControl] } | Select-Object -First 1
        if (-not $view) { throw "no table view for $type" }
        @($view.Control.Headers.Label)
    }

    function script:Assert-Table([string] $Text, [string[]] $Labels, [string] $RowText) {
        $lines = (Remove-Ansi $Text) -split '\r?\n'
        $dash = [array]::FindIndex($lines, [Predicate[string]] { param($l) $l -match '^-' -and $l -match '^[- ]+$' })
        $dash | Should -BeGreaterThan 0 -Because "a table has a line of dashes under its headers:`n$Text"
        $header = $lines[$dash - 1]
        foreach ($label in $Labels) {
            $header | Should -Match ('(^| )' + [regex]::Escape($label) + '( |$)') -Because "the header '$label' is printed whole on the header line of:`n$Text"
        }
        $lines[$dash - 2] | Should -BeNullOrEmpty -Because "the header line is not the second half of a split header:`n$Text"
        $lines[$dash + 1] | Should -BeLike "*$RowText*" -Because "the first row names its file or command:`n$Text"
        ($lines | Where-Object Length -gt 80) | Should -BeNullOrEmpty
    }
}

AfterAll {
    Pop-Location
    $env:REQUIEM_CAS = $SavedCas
    Remove-Item -Recurse -Force $Work -ErrorAction Ignore
}

Describe 'Default table views at 80 columns' {
    It '<Name>' -ForEach @(
        @{ Name = 'Get-RequiemDigest'; Row = 'first-input.txt'; Produce = { Get-RequiemDigest first-input.txt, second-input-with-a-long-name.txt } }
        @{ Name = 'Get-RequiemDigest -InputObject'; Row = '(InputObject)'; Produce = { Get-RequiemDigest -InputObject 'text' } }
        @{ Name = 'Test-RequiemDigest'; Row = 'first-input.txt'; Produce = { Test-RequiemDigest -Path first-input.txt -Expected (Get-RequiemDigest first-input.txt).Hash } }
        @{ Name = 'Test-RequiemDigest -Result'; Row = '(Result)'; Produce = { Test-RequiemDigest -Result $Results[0] } }
        @{ Name = 'Add-RequiemCasObject'; Row = 'first-input.txt'; Produce = { Add-RequiemCasObject first-input.txt, second-input-with-a-long-name.txt } }
        @{ Name = 'Get-RequiemCasRef'; Row = 'views/first'; Produce = {
                $null = Set-RequiemCasRef -Name views/first -Hash (Add-RequiemCasObject first-input.txt).Hash
                Get-RequiemCasRef -Name views/first } }
        @{ Name = 'Invoke-RequiemExec (batch)'; Row = "sh -c 'echo first'"; Produce = { $Requests | Invoke-RequiemExec -WarningAction SilentlyContinue } }
        @{ Name = 'Invoke-RequiemReplay (batch)'; Row = "sh -c 'echo first'"; Produce = { $Results | Invoke-RequiemReplay -WarningAction SilentlyContinue } }
        @{ Name = 'Invoke-RequiemReplay differences'; Row = 'stdout'; Produce = { ($Varying | Invoke-RequiemReplay -WarningAction SilentlyContinue).Differences } }
        @{ Name = 'Test-RequiemHealth'; Row = 'hash_primitive'; Produce = { Test-RequiemHealth -WarningAction SilentlyContinue } }
        @{ Name = 'Get-RequiemPolicy controls'; Row = 'workspace_confinement'; Produce = { (Get-RequiemPolicy).Controls } }
        @{ Name = 'New-RequiemProof'; Row = 'run.proof.json'; Produce = { $Proof } }
        @{ Name = 'Test-RequiemProof'; Row = 'run.proof.json'; Produce = { Test-RequiemProof -Path $ProofFile } }
        @{ Name = 'Export-RequiemProof'; Row = 'run.proof.tar'; Produce = { Export-RequiemProof -Path $ProofFile -Destination (Join-Path $Work 'run.proof.tar') -Force } }
        @{ Name = 'Import-RequiemProof'; Row = 'run.proof.tar'; Produce = { Import-RequiemProof -Path (Join-Path $Work 'run.proof.tar') } }
        @{ Name = 'Test-RequiemCas corrupt objects'; Row = 'content hashes to'; Produce = {
                $store = Join-Path $Work 'corrupt-store'
                $object = 'corrupt me' | Add-RequiemCasObject -Cas $store
                $bytes = [IO.File]::ReadAllBytes($object.ObjectPath); $bytes[0] = $bytes[0] -bxor 1
                [IO.File]::WriteAllBytes($object.ObjectPath, $bytes)
                (Test-RequiemCas -Cas $store).Corrupt } }
        @{ Name = 'Optimize-RequiemCas candidates'; Row = 'Object'; Produce = {
                $store = Join-Path $Work 'gc-store'
                $null = 'unreferenced' | Add-RequiemCasObject -Cas $store
                (Optimize-RequiemCas -Cas $store -GracePeriod 0 -WhatIf 6>$null).Candidates } }
        @{ Name = 'Invoke-RequiemBench cases'; Row = 'true-command'; Produce = { $Bench.Cases } }
        @{ Name = 'Invoke-RequiemBench runs'; Row = '0'; Produce = { $Bench.Cases[0].Runs } }
        @{ Name = 'Compare-RequiemBench cases'; Row = 'true-command'; Produce = { ($Bench | Compare-RequiemBench -Baseline $Bench).Cases } }
        @{ Name = 'Compare-RequiemBench metrics'; Row = 'wall_ms'; Produce = { ($Bench | Compare-RequiemBench -Baseline $Bench).Cases[0].Metrics } }
        @{ Name = 'Measure-RequiemDrift cases'; Row = 'true-command'; Produce = { (Measure-RequiemDrift -Bench $Bench).Cases } }
        @{ Name = 'Invoke-RequiemExec -Engine dual differences'; Row = 'contract_version'; Produce = {
                # an external engine whose result differs in nearly every field
                $engine = Join-Path $Work 'minimal-engine'
                Set-Content -LiteralPath $engine -Value "#!/bin/sh`nwhile [ `$# -gt 0 ]; do [ `"`$1`" = --out ] && out=`$2; shift; done`nprintf '{`"request_digest`":`"0`",`"stdout_digest`":`"0`"}' > `"`$out`"`n"
                chmod +x $engine
                (Invoke-RequiemExec -Request $Requests[1] -Engine dual -EnginePath $engine -WarningAction SilentlyContinue).DualRun.Differences } }
        @{ Name = 'Get-RequiemDualDiff'; Row = 'mismatch'; Produce = { Get-RequiemDualDiff } }
    ) {
        $items = @(& $Produce)
        $items | Should -Not -BeNullOrEmpty
        Assert-Table -Text ($items | Out-String -Width 80) -Labels (Get-TableLabels $items[0]) -RowText $Row
    }

    It 'Test-RequiemHealth shows a passing check on one line, a warning or failure whole' {
        $checks = @(Test-RequiemHealth -WarningAction SilentlyContinue)
        $text = Remove-Ansi ($checks | Out-String -Width 80)
        $lines = $text -split '\r?\n'
        foreach ($check in $checks) {
            $at = [array]::FindIndex($lines, [Predicate[string]] { param($l) $l -match ('^' + [regex]::Escape($check.Check) + ' ') })
            $at | Should -BeGreaterThan 0 -Because "every check has a row:`n$text"
            $continued = @($lines[($at + 1)..($lines.Count - 1)] | ForEach-Object -Begin { $go = $true } -Process { if ($go -and $_ -match '^ {10,}\S') { $_ } else { $go = $false } })
            if ($check.Status -eq 'Pass') {
                $continued | Should -BeNullOrEmpty -Because "a passing check is one line:`n$text"
            }
            else {
                # Every word of the detail is shown, none split across lines.
                $shown = (@($lines[$at].Substring(26)) + @($continued | ForEach-Object { $_.Trim() })) -join ' '
                ($shown -replace '\s+', ' ').Trim() | Should -Be (($check.Detail -replace '\s+', ' ').Trim())
            }
        }
    }

    It 'Invoke-RequiemBench prints its summary within 80 columns' {
        $text = Remove-Ansi ($Bench | Out-String -Width 80)
        $lines = $text -split '\r?\n'
        $header = $lines | Where-Object { $_ -match '^\s+Case\s' }
        $header | Should -Match 'Runs .*Median ms .*Fail$' -Because "the header is one line:`n$text"
        ($lines | Where-Object Length -gt 79) | Should -BeNullOrEmpty
    }

    It 'keeps the end of a long path, so the row still names the file' {
        $deep = Join-Path $Work ('a-directory-with-a-long-name/' * 3)
        New-Item -ItemType Directory -Force -Path $deep | Out-Null
        Set-Content -LiteralPath (Join-Path $deep 'deep-file.txt') -Value 'x'
        $text = Remove-Ansi (Get-RequiemDigest (Join-Path $deep 'deep-file.txt') | Out-String -Width 80)
        $text | Should -Match '…\S*/deep-file\.txt +BLAKE3'
        # The object keeps the full path and the full hash.
        (Get-RequiemDigest (Join-Path $deep 'deep-file.txt')).Path | Should -Be (Join-Path $deep 'deep-file.txt')
    }

    It 'shows the path relative to the current folder only when the file is below it' {
        $folder = New-TestDirectory
        $outside = Join-Path $folder 'outside.txt'
        Set-Content -LiteralPath $outside -Value 'x'
        try {
            $text = Remove-Ansi (Get-RequiemDigest $outside | Out-String -Width 120)
            $text | Should -Match '(?m)^…\S*/outside\.txt +BLAKE3|(?m)^/\S*/outside\.txt +BLAKE3'
            $text | Should -Not -Match '\.\./'
            Push-Location $folder
            try { Remove-Ansi (Get-RequiemDigest $outside | Out-String -Width 120) | Should -Match '(?m)^outside\.txt +BLAKE3' }
            finally { Pop-Location }
        }
        finally { Remove-Item -Recurse -Force -LiteralPath $folder -ErrorAction Ignore }
    }
}

Describe 'Default views through a redirected child pwsh' {
    It 'prints whole headers and the file name when stdout is a file' {
        $out = Join-Path $Work 'redirected.txt'
        $script = "Import-Module '$ModulePath'; Set-Location '$Work'; Get-RequiemDigest first-input.txt | Out-Default; Add-RequiemCasObject second-input-with-a-long-name.txt | Out-Default; `$Host.UI.RawUI.BufferSize.Width"
        $env:REQUIEM_CAS = Join-Path $Work 'cas'
        & $Pwsh -NoProfile -NonInteractive -Command $script > $out 2>&1
        $LASTEXITCODE | Should -Be 0
        $text = Remove-Ansi (Get-Content -LiteralPath $out -Raw)
        $lines = $text -split '\r?\n'
        $width = [int]($lines | Where-Object { $_ -match '^\d+$' } | Select-Object -Last 1)
        $width | Should -BeGreaterThan 0
        $digestHeader = $lines | Where-Object { $_ -match '^Path\s+Algorithm' }
        $digestHeader | Should -Match '^Path +Algorithm +Length +Hash$' -Because "at width ${width}:`n$text"
        $casHeader = $lines | Where-Object { $_ -match '^Path\s+Size' }
        $casHeader | Should -Match '^Path +Size +Stored +Encoding +Existed +Hash$' -Because "at width ${width}:`n$text"
        $text | Should -Match '(?m)^first-input\.txt +BLAKE3'
        $text | Should -Match '(?m)^…\S*long-name\.txt +6 '
    }
}
