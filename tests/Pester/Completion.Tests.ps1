# Tab completion of ref names, as a user gets it from TabExpansion2 (what the console calls on Tab).
BeforeAll {
    . (Join-Path $PSScriptRoot 'TestSetup.ps1')
    $script:Work = New-TestDirectory
    $script:Store = Join-Path $Work 'store'
    $hash = (Add-RequiemCasObject -Cas $Store -InputObject 'completion').Hash
    foreach ($name in 'release/1.0', 'release/1.1', 'nightly') { $null = Set-RequiemCasRef -Cas $Store -Name $name -Hash $hash }
    $script:Hash = $hash
    # Two saved bench baselines: refs bench/main and bench/feature-x.
    $null = Invoke-RequiemBench -Command 'true' -Runs 2 -Warmup 0 -Cas $Store -SaveRef main
    $null = Invoke-RequiemBench -Command 'true' -Runs 2 -Warmup 0 -Cas $Store -SaveRef feature-x

    function script:Complete([string] $Line) {
        @((TabExpansion2 -inputScript $Line -cursorColumn $Line.Length).CompletionMatches)
    }
}
AfterAll { Remove-Item -Recurse -Force $Work -ErrorAction Ignore }

Describe 'Ref name completion' {
    It '<Command> -Name completes the refs that start with what was typed' -ForEach @(
        @{ Command = 'Get-RequiemCasRef' }
        @{ Command = 'Remove-RequiemCasRef' }
        @{ Command = 'Set-RequiemCasRef' }
    ) {
        $found = Complete "$Command -Cas '$Store' -Name rel"
        ($found.CompletionText | Sort-Object) | Should -Be @('release/1.0', 'release/1.1')
        $found[0].ToolTip | Should -Be 'ref release/1.0' -Because 'completion lists names; it never opens the ref files'
        $null = $Hash
    }

    It 'lists every ref when nothing was typed, bench baselines included' {
        $names = (Complete "Get-RequiemCasRef -Cas '$Store' -Name ").CompletionText
        $names | Should -Contain 'nightly'
        $names | Should -Contain 'bench/main'
        $names | Should -Contain 'release/1.1'
    }

    It 'accepts wildcards in what was typed' {
        (Complete "Get-RequiemCasRef -Cas '$Store' -Name *1.1").CompletionText | Should -Be @('release/1.1')
    }

    It 'completes the positional name too' {
        (Complete "Remove-RequiemCasRef -Cas '$Store' night").CompletionText | Should -Be @('nightly')
    }

    It 'resolves a relative -Cas against the current location' {
        Push-Location $Work
        try { (Complete "Get-RequiemCasRef -Cas ./store -Name nigh").CompletionText | Should -Be @('nightly') }
        finally { Pop-Location }
    }

    It 'reads the default store (REQUIEM_CAS) when -Cas is not given' {
        $saved = $env:REQUIEM_CAS
        try {
            $env:REQUIEM_CAS = $Store
            (Complete 'Get-RequiemCasRef -Name nigh').CompletionText | Should -Be @('nightly')
        }
        finally { $env:REQUIEM_CAS = $saved }
    }

    It '<Command> -<Parameter> completes saved bench baselines without the bench/ prefix' -ForEach @(
        @{ Command = 'Compare-RequiemBench -Current x.json'; Parameter = 'BaselineRef' }
        @{ Command = "Invoke-RequiemBench -Command 'true'"; Parameter = 'SaveRef' }
    ) {
        ((Complete "$Command -Cas '$Store' -$Parameter ").CompletionText | Sort-Object) | Should -Be @('feature-x', 'main')
        (Complete "$Command -Cas '$Store' -$Parameter ma").CompletionText | Should -Be @('main')
    }

    It 'lists names without opening ref files, starts in the folder typed, and stops at 200' -Skip:(-not $IsLinux) {
        $store = Join-Path $Work 'many-refs'
        $h = (Add-RequiemCasObject -Cas $store -InputObject 'many').Hash
        New-Item -ItemType Directory -Path (Join-Path $store 'refs/many') -Force | Out-Null
        foreach ($i in 1..300) { [IO.File]::WriteAllText((Join-Path $store ('refs/many/r{0:d3}' -f $i)), "$h`n") }
        Set-RequiemCasRef -Cas $store -Name 'other/x' -Hash $h
        # A FIFO where a ref would be: opening it to read the hash would block the Tab press for ever.
        & mkfifo (Join-Path $store 'refs/many/a-fifo')
        $script = "Import-Module '$ModulePath'; `$l = `"Get-RequiemCasRef -Cas '$store' -Name `"; " +
            "@((TabExpansion2 -inputScript `$l -cursorColumn `$l.Length).CompletionMatches).Count; " +
            "`$l = `"Get-RequiemCasRef -Cas '$store' -Name other/`"; (TabExpansion2 -inputScript `$l -cursorColumn `$l.Length).CompletionMatches.CompletionText"
        $out = & timeout 60 $Pwsh -NoProfile -NonInteractive -Command $script 2>&1
        $LASTEXITCODE | Should -Be 0 -Because 'completion must not open (and block on) a ref file'
        $out[0] | Should -Be 200
        $out[1] | Should -Be 'other/x'
    }

    It 'offers nothing (and no error) when the store does not exist' {
        $missing = Join-Path $Work 'no-store-here'
        Complete "Get-RequiemCasRef -Cas '$missing' -Name " | Should -BeNullOrEmpty
        Test-Path $missing | Should -BeFalse -Because 'completion never creates a store'
    }
}
