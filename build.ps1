#requires -Version 7.4
<#
.SYNOPSIS
    The only entry point for building, testing, documenting, demonstrating and benchmarking Requiem.
.DESCRIPTION
    Build  - compiles the engine and cmdlets and lays out the importable module at out/Requiem/.
    Docs   - compiles docs/help/*.md (platyPS schema) to MAML (part of Build).
    Test   - Package (which builds), then xunit (tests/Unit) and Pester (tests/Pester, in a fresh pwsh that imports out/Requiem).
             Results as JUnit/NUnit XML under out/test-results/. Last line: "N passed, N failed".
    Demo   - Build, then runs examples/demo.ps1 in a fresh pwsh.
    Bench  - Build, then runs bench/*.bench.ps1 in a fresh pwsh and writes out/bench/*.json.
    Package - Build, then out/packages/Requiem.<version>.nupkg for PSResourceGet feeds (Publish-PSResource -NupkgPath,
             or copy it into a folder repository). ReleaseNotes come from CHANGELOG.md; $env:REQUIEM_PROJECT_URI
             (e.g. https://github.com/owner/repo) overrides ProjectUri and LicenseUri.
.EXAMPLE
    dotnet tool restore && dotnet pwsh -NoProfile -File build.ps1 -Task Test
#>
[CmdletBinding()]
param(
    [ValidateSet('Build', 'Test', 'Demo', 'Docs', 'Bench', 'Package')]
    [string] $Task = 'Build',

    [ValidateSet('Release', 'Debug')]
    [string] $Configuration = 'Release',

    # Pester: run only test files whose name matches (e.g. 'Digest').
    [string] $Filter = '*',

    # Bench: run only benchmark scripts whose name matches (e.g. 'digest').
    [string] $Bench = '*'
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest
$Root = $PSScriptRoot
$Out = Join-Path $Root 'out'
$ModuleOut = Join-Path $Out 'Requiem'
$PesterVersion = '6.2.0'
$Pwsh = Join-Path $PSHOME ($IsWindows ? 'pwsh.exe' : 'pwsh')
$env:REQUIEM_PWSH = $Pwsh
$env:DOTNET_CLI_TELEMETRY_OPTOUT = '1'
$env:DOTNET_NOLOGO = '1'

function Invoke-Native {
    param([string] $File, [string[]] $Arguments)
    & $File @Arguments
    if ($LASTEXITCODE -ne 0) { throw "'$File $($Arguments -join ' ')' failed with exit code $LASTEXITCODE" }
}

function Get-NuGetPackageRoot {
    if ($env:NUGET_PACKAGES) { return $env:NUGET_PACKAGES }
    $line = & dotnet nuget locals global-packages --list
    return ($line -replace '^global-packages:\s*', '').Trim()
}

function Merge-Ps1Xml {
    param([string[]] $Files, [string] $RootElement, [string] $ChildContainer, [string] $Destination)
    $merged = [xml]"<?xml version=`"1.0`" encoding=`"utf-8`"?><$RootElement/>"
    $container = $merged.DocumentElement
    if ($ChildContainer) { $container = $container.AppendChild($merged.CreateElement($ChildContainer)) }
    foreach ($file in $Files) {
        $doc = [xml](Get-Content -LiteralPath $file -Raw)
        $source = $ChildContainer ? $doc.DocumentElement[$ChildContainer] : $doc.DocumentElement
        if (-not $source) { continue }
        foreach ($node in @($source.ChildNodes)) {
            if ($node.NodeType -eq 'Element') { [void]$container.AppendChild($merged.ImportNode($node, $true)) }
        }
    }
    $merged.Save($Destination)
}

function Invoke-Docs {
    $helpDir = Join-Path $ModuleOut 'en-US'
    New-Item -ItemType Directory -Force -Path $helpDir | Out-Null
    $maml = Join-Path $helpDir 'Requiem.PowerShell.dll-Help.xml'
    if (Get-Module -ListAvailable -Name platyPS) {
        Import-Module platyPS
        New-ExternalHelp -Path (Join-Path $Root 'docs/help') -OutputPath $helpDir -Force | Out-Null
    }
    else {
        & (Join-Path $Root 'build/ConvertTo-Maml.ps1') -HelpDirectory (Join-Path $Root 'docs/help') -Destination $maml
    }
    # about_ topics ship as plain text next to the MAML.
    Get-ChildItem -LiteralPath (Join-Path $Root 'docs/help') -Filter 'about_*.md' | ForEach-Object {
        Copy-Item -LiteralPath $_.FullName -Destination (Join-Path $helpDir ($_.BaseName + '.help.txt'))
    }
}

function Invoke-Build {
    $publish = Join-Path $Out 'publish'
    $restoreArgs = @()
    if ($env:CI -eq 'true') { $restoreArgs = @('-p:RestoreLockedMode=true') }
    # A fresh publish folder: a library the projects stopped using must not linger and be copied into the module.
    if (Test-Path $publish) { Remove-Item -Recurse -Force $publish }
    Invoke-Native dotnet (@('publish', (Join-Path $Root 'src/Requiem.PowerShell/Requiem.PowerShell.csproj'),
        '-c', $Configuration, '-o', $publish, '--nologo', '-v', 'quiet', '-clp:ErrorsOnly') + $restoreArgs)

    if (Test-Path $ModuleOut) { Remove-Item -Recurse -Force $ModuleOut }
    $deps = Join-Path $ModuleOut 'dependencies'
    New-Item -ItemType Directory -Force -Path $deps | Out-Null

    Copy-Item (Join-Path $publish 'Requiem.PowerShell.dll'), (Join-Path $publish 'Requiem.PowerShell.Loader.dll') $ModuleOut
    Get-ChildItem $publish -Filter *.dll | Where-Object Name -notin 'Requiem.PowerShell.dll', 'Requiem.PowerShell.Loader.dll' | Copy-Item -Destination $deps
    # The native sandbox launcher (built by Requiem.Engine.csproj where a C compiler exists; optional).
    $launcher = Join-Path $publish 'requiem-launch'
    if (Test-Path $launcher) { Copy-Item $launcher $deps }
    elseif ($IsLinux) { Write-Warning 'requiem-launch was not built (no C compiler): Invoke-RequiemExec will use the slower tool chain (bubblewrap, else unshare/prlimit).' }
    Copy-Item (Join-Path $Root 'Requiem.psd1'), (Join-Path $Root 'LICENSE'), (Join-Path $Root 'CHANGELOG.md') $ModuleOut

    $formats = Join-Path $Root 'src/Requiem.PowerShell/Formats'
    Merge-Ps1Xml -Files (Get-ChildItem $formats -Filter *.format.ps1xml | Sort-Object Name).FullName `
        -RootElement Configuration -ChildContainer ViewDefinitions -Destination (Join-Path $ModuleOut 'Requiem.format.ps1xml')
    Merge-Ps1Xml -Files (Get-ChildItem $formats -Filter *.types.ps1xml | Sort-Object Name).FullName `
        -RootElement Types -ChildContainer $null -Destination (Join-Path $ModuleOut 'Requiem.types.ps1xml')

    $schemas = Join-Path $Root 'schemas'
    if (Test-Path $schemas) { Copy-Item -Recurse $schemas (Join-Path $ModuleOut 'schemas') }
    # The `requiem` command (the Requiem CLI's grammar): a POSIX sh and a Windows launcher around one script. The script
    # is not named requiem.ps1: PSResourceGet takes the casing of a file named like the package for the install folder.
    $bin = Join-Path $ModuleOut 'bin'
    New-Item -ItemType Directory -Force -Path $bin | Out-Null
    Copy-Item (Join-Path $Root 'src/cli/requiem'), (Join-Path $Root 'src/cli/requiem.cmd'), (Join-Path $Root 'src/cli/requiem-cli.ps1') $bin
    if (-not $IsWindows) {
        $launcherPath = Join-Path $bin 'requiem'
        [IO.File]::SetUnixFileMode($launcherPath, [IO.File]::GetUnixFileMode($launcherPath) -bor [IO.UnixFileMode]'UserExecute, GroupExecute, OtherExecute')
    }
    $companions = Join-Path $Root 'src/modules'
    if (Test-Path $companions) {
        Get-ChildItem $companions -Directory | ForEach-Object {
            # Replace, not merge: Copy-Item -Recurse into an existing folder would nest it (out/X/X).
            $dest = Join-Path $Out $_.Name
            if (Test-Path $dest) { Remove-Item -Recurse -Force $dest }
            Copy-Item -Recurse $_.FullName $dest
        }
    }

    Invoke-Docs

    $expected = @(
        'Requiem.psd1', 'LICENSE', 'CHANGELOG.md', 'Requiem.PowerShell.dll', 'Requiem.PowerShell.Loader.dll', 'Requiem.format.ps1xml', 'Requiem.types.ps1xml',
        'en-US/Requiem.PowerShell.dll-Help.xml',
        'dependencies/Requiem.Engine.dll', 'dependencies/ZstdSharp.dll',
        'schemas/bench-spec.schema.json', 'schemas/bench-report.schema.json', 'bin/requiem', 'bin/requiem.cmd', 'bin/requiem-cli.ps1',
        '../Requiem.Pester/Requiem.Pester.psd1', '../Requiem.Pester/Requiem.Pester.psm1'
    )
    $missing = $expected | Where-Object { -not (Test-Path (Join-Path $ModuleOut $_)) }
    if ($missing) { throw "Build output is incomplete; missing: $($missing -join ', ')" }
    if (Test-Path (Join-Path $deps 'Blake3.dll')) {
        throw 'Blake3.dll leaked into dependencies/: the Blake3 package is the tests'' reference, the module hashes with its own BLAKE3.'
    }
    if (Test-Path (Join-Path $deps 'System.Management.Automation.dll')) {
        throw 'System.Management.Automation.dll leaked into dependencies/: the PowerShell reference must be compile-only.'
    }
    Write-Host "Built module: $ModuleOut"
}

function Get-PesterModulePath {
    $packages = Get-NuGetPackageRoot
    $psd1 = Join-Path $packages "pester/$PesterVersion/tools/Pester.psd1"
    if (-not (Test-Path $psd1)) {
        Invoke-Native dotnet @('restore', (Join-Path $Root 'build/tools.proj'), '--nologo', '-v', 'quiet')
    }
    if (-not (Test-Path $psd1)) { throw "Pester $PesterVersion was not restored to $psd1" }
    return $psd1
}

function Read-JUnitCounts {
    param([string] $File)
    $xml = [xml](Get-Content -LiteralPath $File -Raw)
    $passed = 0; $failed = 0; $skipped = 0
    foreach ($suite in $xml.SelectNodes('//testsuite')) {
        $tests = [int]$suite.tests; $f = [int]$suite.failures + [int]$suite.errors; $s = [int]$suite.skipped
        $passed += $tests - $f - $s; $failed += $f; $skipped += $s
    }
    [pscustomobject]@{ Passed = $passed; Failed = $failed; Skipped = $skipped }
}

function Invoke-Test {
    Invoke-Package   # Build, then the nupkg that tests/Pester/Package.Tests.ps1 installs
    $results = Join-Path $Out 'test-results'
    if (Test-Path $results) { Remove-Item -Recurse -Force $results }
    New-Item -ItemType Directory -Force -Path $results | Out-Null

    Write-Host '== xunit (tests/Unit) =='
    & dotnet test (Join-Path $Root 'tests/Unit/Requiem.Tests.csproj') -c $Configuration --nologo `
        --logger "junit;LogFilePath=$results/xunit.junit.xml" --logger 'console;verbosity=minimal' | Out-Host
    $xunitExit = $LASTEXITCODE
    $xunit = if (Test-Path "$results/xunit.junit.xml") { Read-JUnitCounts "$results/xunit.junit.xml" }
             else { [pscustomobject]@{ Passed = 0; Failed = 1; Skipped = 0 } }
    if ($xunitExit -ne 0 -and $xunit.Failed -eq 0) { $xunit.Failed = 1 }   # build or host failure counts as a failure

    Write-Host '== Pester (tests/Pester, fresh pwsh importing out/Requiem) =='
    # Tests never touch the user's own store, config or metrics: the default data directory points into out/.
    $env:XDG_DATA_HOME = Join-Path $Out 'test-data'
    Remove-Item Env:REQUIEM_CAS, Env:REQUIEM_CONFIG, Env:REQUIEM_METRICS_DIR, Env:REQUIEM_REMOTE_CONNECTION_STRING, Env:REQUIEM_REMOTE_CONTAINER -ErrorAction Ignore
    $pester = Get-PesterModulePath
    $summary = Join-Path $results 'pester.summary.json'
    $script = @"
`$ErrorActionPreference = 'Stop'
Import-Module '$pester' -RequiredVersion $PesterVersion
`$c = New-PesterConfiguration
`$c.Run.PassThru = `$true
`$c.Output.Verbosity = 'Normal'
`$c.TestResult.Enabled = `$false
`$files = Get-ChildItem '$(Join-Path $Root 'tests/Pester')' -Filter '*.Tests.ps1' | Where-Object Name -like '$Filter*'
`$c.Run.Path = @(`$files.FullName)
`$r = Invoke-Pester -Configuration `$c
if (`$null -eq `$r) { throw 'Invoke-Pester returned no result' }
@{ Passed = `$r.PassedCount; Failed = `$r.FailedCount + `$r.FailedBlocksCount + `$r.FailedContainersCount; Skipped = `$r.SkippedCount } |
    ConvertTo-Json | Set-Content -LiteralPath '$summary'
# The report is written after the counts: a message Pester's XML writer cannot encode must not lose the run's result.
try { Export-NUnitReport -Result `$r -Path '$results/pester.nunit.xml' }
catch { Write-Warning "The NUnit report could not be written: `$_" }
"@
    # Child processes (pwsh among them) write plain text, so captured output in failure messages has no escape codes.
    $env:NO_COLOR = '1'
    Remove-Item -LiteralPath $summary -ErrorAction Ignore
    & $Pwsh -NoProfile -NonInteractive -Command $script | Out-Host
    $pesterExit = $LASTEXITCODE
    $pesterCounts = if (Test-Path $summary) { Get-Content $summary -Raw | ConvertFrom-Json } else { $null }
    if ($null -eq $pesterCounts -or -not ($pesterCounts.Passed -is [long] -or $pesterCounts.Passed -is [int])) {
        Write-Host "Pester did not report its counts (exit code $pesterExit): counted as a failure."
        $pesterCounts = [pscustomobject]@{ Passed = 0; Failed = 1; Skipped = 0 }
    }
    elseif ($pesterExit -ne 0 -and $pesterCounts.Failed -eq 0) { $pesterCounts.Failed = 1 }

    $passed = $xunit.Passed + $pesterCounts.Passed
    $failed = $xunit.Failed + $pesterCounts.Failed
    $skipped = $xunit.Skipped + $pesterCounts.Skipped
    Write-Host ("xunit: {0} passed, {1} failed, {2} skipped; Pester: {3} passed, {4} failed, {5} skipped" -f `
        $xunit.Passed, $xunit.Failed, $xunit.Skipped, $pesterCounts.Passed, $pesterCounts.Failed, $pesterCounts.Skipped)
    Write-Host "$passed passed, $failed failed"
    if ($failed -gt 0 -or ($passed -eq 0)) { exit 1 }
}

function Invoke-Demo {
    Invoke-Build
    & $Pwsh -NoProfile -NonInteractive -File (Join-Path $Root 'examples/demo.ps1') -ModulePath (Join-Path $ModuleOut 'Requiem.psd1')
    if ($LASTEXITCODE -ne 0) { throw "Demo failed with exit code $LASTEXITCODE" }
}

function Invoke-Bench {
    Invoke-Build
    $benchOut = Join-Path $Out 'bench'
    New-Item -ItemType Directory -Force -Path $benchOut | Out-Null
    $scripts = Get-ChildItem (Join-Path $Root 'bench') -Filter '*.bench.ps1' | Where-Object Name -like "$Bench*" | Sort-Object Name
    foreach ($s in $scripts) {
        Write-Host "== $($s.Name) =="
        & $Pwsh -NoProfile -NonInteractive -File $s.FullName -ModulePath (Join-Path $ModuleOut 'Requiem.psd1') -OutDirectory $benchOut
        if ($LASTEXITCODE -ne 0) { throw "Benchmark $($s.Name) failed with exit code $LASTEXITCODE" }
    }
}

function Get-ReleaseNotes {
    param([string] $Version)
    # The CHANGELOG.md section headed "## <version>", up to the next "## ".
    $text = Get-Content -LiteralPath (Join-Path $Root 'CHANGELOG.md') -Raw
    $match = [regex]::Match($text, "(?ms)^##\s+$([regex]::Escape($Version))\b[^\n]*\n(.*?)(?=^##\s|\z)")
    if (-not $match.Success) { throw "CHANGELOG.md has no '## $Version' section: add one before packaging." }
    return $match.Groups[1].Value.Trim()
}

# Marks one zip entry as a Unix executable (mode 0755 in the high 16 bits of its external attributes, "made by" Unix),
# so unzip and .NET's ZipFile.ExtractToDirectory on Linux/macOS restore the execute bit of the `requiem` launcher.
function Set-ZipEntryExecutable {
    param([string] $Archive, [string] $Entry)
    Add-Type -AssemblyName System.IO.Compression
    $stream = [IO.File]::Open($Archive, 'Open', 'ReadWrite')
    try {
        $zip = [IO.Compression.ZipArchive]::new($stream, [IO.Compression.ZipArchiveMode]::Update)
        try {
            $e = $zip.GetEntry($Entry)
            if (-not $e) { throw "The package has no $Entry" }
            $e.ExternalAttributes = (0x81ED -shl 16)   # S_IFREG | 0755
        }
        finally { $zip.Dispose() }
    }
    finally { $stream.Dispose() }
}

function Invoke-Package {
    Invoke-Build
    $manifestPath = Join-Path $ModuleOut 'Requiem.psd1'
    $version = (Import-PowerShellDataFile -LiteralPath $manifestPath).ModuleVersion
    $notes = (Get-ReleaseNotes $version) -replace "'", "''"
    $manifest = Get-Content -LiteralPath $manifestPath -Raw
    $manifest = [regex]::Replace($manifest, "(?m)^(\s*ReleaseNotes\s*=\s*)''", { param($m) $m.Groups[1].Value + "'" + $notes + "'" })
    if ($env:REQUIEM_PROJECT_URI) {
        $project = $env:REQUIEM_PROJECT_URI.TrimEnd('/')
        if (-not [Uri]::IsWellFormedUriString($project, [UriKind]::Absolute) -or $project -match "'") {
            throw "REQUIEM_PROJECT_URI is not an absolute URI: $project"
        }
        $manifest = [regex]::new('(?m)^(\s*)(Tags\s*=.*)$').Replace($manifest, {
            param($m) $m.Value + "`n" + $m.Groups[1].Value + "ProjectUri   = '$project'`n" + $m.Groups[1].Value + "LicenseUri   = '$project/blob/main/LICENSE'"
        }, 1)
    }
    else {
        Write-Warning ('ProjectUri and LicenseUri are left out of the package: set $env:REQUIEM_PROJECT_URI to the public ' +
            'address of the repository (e.g. https://github.com/owner/repo) before publishing to a feed.')
    }
    Set-Content -LiteralPath $manifestPath -Value $manifest -NoNewline -Encoding utf8
    $tested = Test-ModuleManifest -Path $manifestPath -ErrorAction Stop -WarningVariable manifestWarnings
    if ($manifestWarnings) { throw "Test-ModuleManifest warned: $($manifestWarnings -join '; ')" }
    if (-not $tested.ReleaseNotes) { throw 'ReleaseNotes did not reach the packaged manifest.' }

    $packages = Join-Path $Out 'packages'
    if (Test-Path $packages) { Remove-Item -Recurse -Force $packages }
    New-Item -ItemType Directory -Force -Path $packages | Out-Null
    Import-Module Microsoft.PowerShell.PSResourceGet -ErrorAction Stop
    Compress-PSResource -Path $ModuleOut -DestinationPath $packages
    $nupkg = Join-Path $packages "Requiem.$version.nupkg"
    if (-not (Test-Path $nupkg)) { throw "Compress-PSResource did not write $nupkg" }
    # A nupkg is a zip without Unix permissions: the module restores the launcher's execute bit when it first needs it.
    Add-Type -AssemblyName System.IO.Compression.FileSystem
    $zip = [System.IO.Compression.ZipFile]::OpenRead($nupkg)
    try { $entries = $zip.Entries.FullName } finally { $zip.Dispose() }
    foreach ($required in 'Requiem.psd1', 'LICENSE', 'dependencies/Requiem.Engine.dll', 'en-US/Requiem.PowerShell.dll-Help.xml', 'bin/requiem', 'bin/requiem-cli.ps1', 'bin/requiem.cmd') {
        if ($required -notin $entries) { throw "The package is missing $required" }
    }
    Set-ZipEntryExecutable -Archive $nupkg -Entry 'bin/requiem'
    Write-Host "Package: $nupkg ($(if ('dependencies/requiem-launch' -in $entries) { 'with' } else { 'without' }) requiem-launch)"
}

switch ($Task) {
    'Build' { Invoke-Build }
    'Docs' { Invoke-Docs }
    'Test' { Invoke-Test }
    'Demo' { Invoke-Demo }
    'Bench' { Invoke-Bench }
    'Package' { Invoke-Package }
}
