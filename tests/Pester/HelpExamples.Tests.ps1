# The help a user reads is the help that was built (out/Requiem/en-US): every example in it runs as written, in a
# scratch folder with a fresh data directory; no page mentions "seed"; Get-Help -Online never fails on a bad URI.
BeforeDiscovery {
    $modulePath = Join-Path $PSScriptRoot '../../out/Requiem/Requiem.psd1'
    Import-Module $modulePath
    $script:Examples = foreach ($command in (Get-Command -Module Requiem -CommandType Cmdlet | Sort-Object Name)) {
        $index = 0
        foreach ($example in @((Get-Help $command.Name -Examples).examples.example)) {
            $index++
            @{ Id = "$($command.Name) #$index"; Code = [string]$example.code }
        }
    }
    $script:CommandNames = @((Get-Command -Module Requiem -CommandType Cmdlet).Name | Sort-Object)
}

BeforeAll {
    . (Join-Path $PSScriptRoot 'TestSetup.ps1')

    # Examples that cannot run on this machine, each with its reason. Keep this list short.
    $script:CannotRunHere = @{
        'Get-RequiemMetric #2' = "writes into node_exporter's textfile folder, which exists only where node_exporter is installed"
    }
    if (-not (Get-Command b3sum -ErrorAction Ignore)) {
        $CannotRunHere['Get-RequiemDigest #3'] = 'compares with the b3sum tool, which is not installed here'
    }
    $azurite = [Net.Sockets.TcpClient]::new()
    try { $azurite.Connect('127.0.0.1', 10000) } catch { } finally { $azuriteListening = $azurite.Connected; $azurite.Dispose() }
    if (-not $azuriteListening) {
        foreach ($id in 'Sync-RequiemCas #1', 'Sync-RequiemCas #2', 'Test-RequiemCas #4') { $CannotRunHere[$id] = 'needs the Azurite emulator on 127.0.0.1:10000 (.ci/run starts it)' }
    }
    if (-not (Test-RequiemHealth -Quiet -WarningAction SilentlyContinue)) {
        $CannotRunHere['Test-RequiemHealth #2'] = 'a health check fails on this machine, so the gate throws, as it should'
    }
    if (-not (Test-RequiemReplacement -Quiet -WarningAction SilentlyContinue)) {
        $CannotRunHere['Test-RequiemReplacement #3'] = 'this machine has cutover blockers, so the gate throws, as it should'
    }

    # Extracted again here (discovery data is not visible to the run): the same list, from the built help.
    $examples = foreach ($command in (Get-Command -Module Requiem -CommandType Cmdlet | Sort-Object Name)) {
        $index = 0
        foreach ($example in @((Get-Help $command.Name -Examples).examples.example)) {
            $index++
            [pscustomobject]@{ Id = "$($command.Name) #$index"; Code = [string]$example.code }
        }
    }
    $script:Root = New-TestDirectory
    foreach ($d in 'tmp', 'home', 'scratch', 'data') { New-Item -ItemType Directory (Join-Path $Root $d) | Out-Null }
    $examplesFile = Join-Path $Root 'examples.json'
    $resultsFile = Join-Path $Root 'results.json'
    $examples | Where-Object { -not $CannotRunHere.ContainsKey($_.Id) } | ConvertTo-Json -AsArray | Set-Content -LiteralPath $examplesFile

    # One fresh pwsh runs them all: each example in its own scratch folder, with its own data directory (so the
    # default store, config and metrics start empty), TMPDIR (the Temp: drive) and HOME inside the test folder.
    $runner = @'
param($ModulePath, $ExamplesFile, $ResultsFile, $Root)
Import-Module $ModulePath
$results = [ordered]@{}
$n = 0
foreach ($example in (Get-Content -LiteralPath $ExamplesFile -Raw | ConvertFrom-Json)) {
    $n++
    $scratch = New-Item -ItemType Directory (Join-Path $Root "scratch/$n")
    $env:XDG_DATA_HOME = (New-Item -ItemType Directory (Join-Path $Root "data/$n")).FullName
    Remove-Item Env:REQUIEM_CAS, Env:REQUIEM_CONFIG, Env:REQUIEM_METRICS_DIR, Env:REQUIEM_REMOTE_CONNECTION_STRING, Env:REQUIEM_REMOTE_CONTAINER -ErrorAction Ignore
    Push-Location -LiteralPath $scratch.FullName
    $watch = [Diagnostics.Stopwatch]::StartNew()
    try {
        $code = [scriptblock]::Create($example.Code)
        $output = & { $ErrorActionPreference = 'Stop'; . $code } *>&1 | Out-String -Width 120
        $results[$example.Id] = @{ Ok = $true; Output = $output; Seconds = $watch.Elapsed.TotalSeconds }
    }
    catch {
        $results[$example.Id] = @{ Ok = $false; Output = ($_ | Out-String -Width 120) + $_.ScriptStackTrace; Seconds = $watch.Elapsed.TotalSeconds }
    }
    finally { Pop-Location }
}
$results | ConvertTo-Json -Depth 3 | Set-Content -LiteralPath $ResultsFile
'@
    $runnerFile = Join-Path $Root 'run-examples.ps1'
    Set-Content -LiteralPath $runnerFile -Value $runner
    $environment = @{
        TMPDIR = Join-Path $Root 'tmp'; HOME = Join-Path $Root 'home'; XDG_DATA_HOME = Join-Path $Root 'data'
        REQUIEM_CAS = $null; REQUIEM_CONFIG = $null; REQUIEM_METRICS_DIR = $null; GITHUB_ACTIONS = $null; TF_BUILD = $null
    }
    $saved = @{}
    foreach ($k in $environment.Keys) { $saved[$k] = [Environment]::GetEnvironmentVariable($k); [Environment]::SetEnvironmentVariable($k, $environment[$k]) }
    try {
        $script:RunnerOutput = & $Pwsh -NoProfile -NonInteractive -File $runnerFile -ModulePath $ModulePath `
            -ExamplesFile $examplesFile -ResultsFile $resultsFile -Root $Root 2>&1 | Out-String
    }
    finally {
        foreach ($k in $saved.Keys) { [Environment]::SetEnvironmentVariable($k, $saved[$k]) }
    }
    $script:Results = if (Test-Path -LiteralPath $resultsFile) { Get-Content -LiteralPath $resultsFile -Raw | ConvertFrom-Json -AsHashtable } else { @{} }
}

AfterAll { Remove-Item -Recurse -Force $Root -ErrorAction Ignore }

Describe 'Help examples' {
    It 'the built help has examples for every cmdlet' -ForEach @(@{ Names = $CommandNames; Examples = $Examples }) {
        foreach ($name in $Names) {
            @($Examples | Where-Object { $_.Id -like "$name #*" }).Count | Should -BeGreaterThan 0 -Because "$name has an example"
        }
    }

    It '<Id> runs as written' -ForEach $Examples {
        if ($CannotRunHere.ContainsKey($Id)) {
            Set-ItResult -Skipped -Because $CannotRunHere[$Id]
            return
        }
        $Results.ContainsKey($Id) | Should -BeTrue -Because "the runner reported every example:`n$RunnerOutput"
        $result = $Results[$Id]
        $result.Ok | Should -BeTrue -Because "the example`n$Code`nfailed with:`n$($result.Output)"
    }
}

Describe 'Help text' {
    It 'no help page mentions the seed' {
        $helpDir = Join-Path (Split-Path $ModulePath) 'en-US'
        $files = Get-ChildItem -LiteralPath $helpDir -File
        $files.Name | Should -Contain 'about_Requiem.help.txt'
        $hits = $files | Select-String -Pattern '\bseed' | ForEach-Object { "$($_.Filename):$($_.LineNumber): $($_.Line.Trim())" }
        $hits | Should -BeNullOrEmpty
    }

    It 'Get-Help <_> shows no seed' -ForEach $CommandNames {
        Get-Help $_ -Full | Out-String | Should -Not -Match '\bseed'
    }

    It 'about_Requiem is found by Get-Help and covers locations, variables, config and CI' {
        $text = Get-Help about_Requiem | Out-String
        foreach ($needle in 'XDG_DATA_HOME', 'REQUIEM_CAS', 'REQUIEM_CONFIG', 'REQUIEM_METRICS_DIR', 'REQUIEM_LAUNCHER',
            'config.json', 'GitHub Actions', 'Azure DevOps', '-FailOnRegression', '-FailOnInvalid') {
            $text | Should -BeLike "*$needle*"
        }
    }

    It 'about_Requiem names every REQUIEM_ environment variable the module reads' {
        $source = Get-ChildItem (Join-Path $RepoRoot 'src') -Recurse -Filter *.cs | Where-Object FullName -notmatch '[/\\](bin|obj)[/\\]'
        $variables = $source | Select-String -Pattern '"(REQUIEM_[A-Z0-9_]+)"' -AllMatches -CaseSensitive |
            ForEach-Object { $_.Matches.Groups | Where-Object Name -eq 1 | ForEach-Object Value } | Sort-Object -Unique
        $variables | Should -Not -BeNullOrEmpty
        $text = Get-Help about_Requiem | Out-String
        foreach ($v in $variables) { $text | Should -BeLike "*$v*" -Because "$v is read by the module" }
    }

    It 'Get-Help <_> -Online says there is no online page instead of failing on a relative URI' -ForEach $CommandNames {
        $command = Get-Command $_
        if ($command.HelpUri) { [uri]::IsWellFormedUriString($command.HelpUri, 'Absolute') | Should -BeTrue }
        $uris = @((Get-Help $_ -Full).relatedLinks.navigationLink | ForEach-Object { $_.uri } | Where-Object { $_ })
        foreach ($uri in $uris) { [uri]::IsWellFormedUriString($uri, 'Absolute') | Should -BeTrue -Because "'$uri' is a related link of $_" }
        if (-not $command.HelpUri -and -not $uris) {
            # With no URI anywhere, Get-Help -Online stops with "...the Internet address (URI) of the Help topic is not
            # specified..." (PSInvalidOperationException) before it would start a browser.
            $thrown = $null
            try { Get-Help $_ -Online } catch { $thrown = $_ }
            $thrown | Should -Not -BeNullOrEmpty
            $thrown.Exception | Should -BeOfType System.Management.Automation.PSInvalidOperationException
            "$thrown" | Should -Not -BeLike '*is not valid*'
        }
    }
}
