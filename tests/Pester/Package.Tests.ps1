# The package as a user gets it: build.ps1 -Task Package (run by -Task Test before the tests) -> a folder repository ->
# Install-PSResource / Save-PSResource into a scratch HOME -> Import-Module in a fresh pwsh that sees only that HOME.
BeforeDiscovery {
    $script:OnLinux = $IsLinux
}

BeforeAll {
    . (Join-Path $PSScriptRoot 'TestSetup.ps1')
    $script:Version = (Import-PowerShellDataFile (Join-Path $RepoRoot 'Requiem.psd1')).ModuleVersion
    $script:Nupkg = Join-Path $RepoRoot "out/packages/Requiem.$Version.nupkg"
    if (-not (Test-Path $Nupkg)) { throw "Run 'build.ps1 -Task Package' first: $Nupkg not found" }
    $script:BuiltLauncher = Test-Path (Join-Path $RepoRoot 'out/Requiem/dependencies/requiem-launch')
    $script:Scratch = New-TestDirectory
    $script:ScratchHome = Join-Path $Scratch 'home'
    $script:Repo = Join-Path $Scratch 'repo'
    $script:Saved = Join-Path $Scratch 'saved'
    $script:Ws = Join-Path $Scratch 'ws'
    # ~/.local/share and ~/.config must exist: .NET reports no LocalApplicationData/ApplicationData without them, and
    # PSResourceGet and NuGet then write their settings into the current directory.
    New-Item -ItemType Directory -Path "$ScratchHome/.local/share", "$ScratchHome/.config", $Repo, $Saved, $Ws | Out-Null

    # Only the scratch HOME: no inherited module path, data directory, store, config or launcher choice.
    function script:Invoke-AsNewUser([string] $Script, [hashtable] $Extra = @{}) {
        $environment = @{
            HOME = $ScratchHome; XDG_DATA_HOME = "$ScratchHome/.local/share"; XDG_CONFIG_HOME = "$ScratchHome/.config"
            XDG_CACHE_HOME = "$ScratchHome/.cache"; PSModulePath = $null; REQUIEM_CAS = $null; REQUIEM_CONFIG = $null
            REQUIEM_METRICS_DIR = $null; REQUIEM_LAUNCHER = $null
        }
        foreach ($k in $Extra.Keys) { $environment[$k] = $Extra[$k] }
        Invoke-FreshPwsh -Script $Script -Environment $environment
    }

    # Imports the module (by name, or from a path), then health, one exec and help; the last output line is JSON.
    function script:Test-Module([string] $Import, [hashtable] $Extra = @{}) {
        $script = @"
`$ErrorActionPreference = 'Stop'
Import-Module $Import
`$w = @()
`$h = Get-RequiemHealth -WarningVariable +w -WarningAction SilentlyContinue
`$r = Invoke-RequiemExec -Request @{ command = '/bin/echo'; argv = @('packaged'); workspace_root = '$Ws' } -IncludeOutput -WarningVariable +w -WarningAction SilentlyContinue
`$r2 = Invoke-RequiemExec -Request @{ command = '/bin/echo'; argv = @('again'); workspace_root = '$Ws' } -IncludeOutput -WarningVariable +w -WarningAction SilentlyContinue
[pscustomobject]@{
    ModuleBase = (Get-Module Requiem).ModuleBase
    Isolator = `$h.Isolator
    Notes = @(`$h.ProbeNotes)
    Warnings = @(`$w | ForEach-Object { "`$_" })
    Stdout = `$r.StdoutText + `$r2.StdoutText
    Enforced = @(`$r.Sandbox.Enforced)
    Synopsis = (Get-Help Invoke-RequiemExec).Synopsis
    LauncherMode = if (Test-Path (Join-Path (Get-Module Requiem).ModuleBase 'dependencies/requiem-launch')) { (Get-Item (Join-Path (Get-Module Requiem).ModuleBase 'dependencies/requiem-launch')).UnixFileMode.ToString() } else { '' }
} | ConvertTo-Json -Compress
"@
        $out = Invoke-AsNewUser -Script $script -Extra $Extra
        ($out | Select-Object -Last 1) | ConvertFrom-Json
    }

    Invoke-AsNewUser -Script @"
`$ErrorActionPreference = 'Stop'
Register-PSResourceRepository -Name scratch -Uri '$Repo' -Trusted
Publish-PSResource -NupkgPath '$Nupkg' -Repository scratch
Install-PSResource -Name Requiem -Repository scratch -Scope CurrentUser -TrustRepository
Save-PSResource -Name Requiem -Repository scratch -Path '$Saved' -TrustRepository
"@ | Out-Null
    $script:Installed = Join-Path $ScratchHome ".local/share/powershell/Modules/Requiem/$Version"
    $script:SavedModule = Join-Path $Saved "Requiem/$Version"
}

AfterAll {
    Remove-Item -Recurse -Force $Scratch -ErrorAction Ignore
}

Describe 'build.ps1 -Task Package' {
    It 'writes a nupkg whose manifest passes Test-ModuleManifest and carries the feed metadata, LICENSE and release notes' {
        $m = Test-ModuleManifest -Path (Join-Path $Installed 'Requiem.psd1') -ErrorAction Stop
        $m.Version.ToString() | Should -Be $Version
        # The addresses come from REQUIEM_PROJECT_URI at package time (this process inherits the build's environment);
        # without it the package carries none rather than an invented one.
        if ($env:REQUIEM_PROJECT_URI) {
            "$($m.ProjectUri)" | Should -Be $env:REQUIEM_PROJECT_URI.TrimEnd('/')
            "$($m.LicenseUri)" | Should -Be ($env:REQUIEM_PROJECT_URI.TrimEnd('/') + '/blob/main/LICENSE')
        }
        else {
            $m.ProjectUri | Should -BeNullOrEmpty
            $m.LicenseUri | Should -BeNullOrEmpty
        }
        $m.ReleaseNotes | Should -Match 'PSResourceGet'
        $m.Tags | Should -Contain 'BLAKE3'
        Join-Path $Installed 'LICENSE' | Should -Exist
        Get-Content (Join-Path $Installed 'LICENSE') -Raw | Should -Match 'MIT License'
    }

    It 'ships the engine and its libraries but not the Blake3 package (the tests'' reference only)' {
        Add-Type -AssemblyName System.IO.Compression.FileSystem
        $zip = [IO.Compression.ZipFile]::OpenRead($Nupkg)
        try { $names = @($zip.Entries.FullName) }
        finally { $zip.Dispose() }
        $names | Should -Contain 'dependencies/Requiem.Engine.dll'
        $names | Should -Contain 'dependencies/ZstdSharp.dll'
        $names | Where-Object { $_ -match '(^|/)Blake3\.dll$' } | Should -BeNullOrEmpty
    }

    It 'carries the requiem command: bin/requiem marked 0755 in the archive, and the installed copy runs' -Skip:(-not $IsLinux) {
        Add-Type -AssemblyName System.IO.Compression.FileSystem
        $zip = [IO.Compression.ZipFile]::OpenRead($Nupkg)
        try { $entry = $zip.GetEntry('bin/requiem'); $mode = ($entry.ExternalAttributes -shr 16) -band 0xFFFF }
        finally { $zip.Dispose() }
        [Convert]::ToString($mode, 8) | Should -Be '100755'
        foreach ($f in 'bin/requiem.cmd', 'bin/requiem-cli.ps1') { Join-Path $Installed $f | Should -Exist }
        # Install-PSResource keeps the mode the archive gives, so the installed command runs as it is.
        (Get-Item (Join-Path $Installed 'bin/requiem')).UnixFileMode.ToString() | Should -Match 'UserExecute'
        $env:REQUIEM_PWSH = $Pwsh
        $out = & (Join-Path $Installed 'bin/requiem') health
        $LASTEXITCODE | Should -Be 0
        ($out | ConvertFrom-Json).hash_backend | Should -Be 'vendored'
    }

    It 'stamps the one version number into the assemblies and EngineVersion' {
        (Get-RequiemHealth).EngineVersion | Should -Be $Version
        [Reflection.AssemblyName]::GetAssemblyName((Join-Path $Installed 'Requiem.PowerShell.dll')).Version.ToString(3) | Should -Be $Version
    }
}

Describe 'Installed from a folder repository (<Route>)' -Skip:(-not $OnLinux) -ForEach @(
    @{ Route = 'Install-PSResource -Scope CurrentUser, imported by name'; Import = 'Requiem' }
    @{ Route = 'Save-PSResource, imported from the saved path'; Import = 'SAVED' }
) {
    BeforeAll {
        $what = if ($Import -eq 'SAVED') { "'$(Join-Path $SavedModule 'Requiem.psd1')'" } else { $Import }
        $script:Result = Test-Module -Import $what
        $script:ExpectedBase = if ($Import -eq 'SAVED') { $SavedModule } else { $Installed }
    }

    It 'imports the installed copy, not the build folder' {
        $Result.ModuleBase | Should -Be $ExpectedBase
    }

    It 'uses requiem-launch (its execute bit restored) when the build made one, and else says why once' {
        if ($BuiltLauncher) {
            $Result.Isolator | Should -Be 'requiem-launch'
            $Result.LauncherMode | Should -Match 'UserExecute'
            $Result.Warnings | Should -BeNullOrEmpty
        }
        else {
            $Result.Isolator | Should -Not -Be 'requiem-launch'
            @($Result.Warnings).Count | Should -Be 1
            $Result.Warnings[0] | Should -Match 'requiem-launch is not used: not found.*Fix:'
        }
    }

    It 'runs a command sandboxed and has its help' {
        $Result.Stdout | Should -Be "packaged`nagain`n"
        $Result.Enforced | Should -Contain 'process_tree_kill'
        $Result.Synopsis | Should -Match 'sandbox'
    }
}

Describe 'A launcher built for another CPU' -Skip:(-not $OnLinux) {
    BeforeAll {
        $script:Foreign = Join-Path $Scratch 'requiem-launch-foreign'
        $source = Join-Path $Installed 'dependencies/requiem-launch'
        if (Test-Path $source) { Copy-Item $source $Foreign }
        else { Copy-Item (Get-Command ls -CommandType Application | Select-Object -First 1).Source $Foreign }
        # e_machine (offset 18, little-endian here): the other one of x86-64 (62) and aarch64 (183).
        $bytes = [IO.File]::ReadAllBytes($Foreign)
        $machine = [BitConverter]::ToUInt16($bytes, 18)
        $other = if ($machine -eq 183) { 62 } else { 183 }
        [BitConverter]::GetBytes([uint16]$other).CopyTo($bytes, 18)
        [IO.File]::WriteAllBytes($Foreign, $bytes)
        & chmod +x $Foreign
        $script:Result = Test-Module -Import 'Requiem' -Extra @{ REQUIEM_LAUNCHER = $Foreign }
    }

    It 'is refused with one warning that gives the reason and the fix' {
        $Result.Isolator | Should -Not -Be 'requiem-launch'
        # The tool chain it falls back to also warns about controls it cannot enforce (filesystem isolation, seccomp);
        # the launcher itself is named exactly once.
        $launcher = @($Result.Warnings | Where-Object { $_ -match 'requiem-launch' })
        $launcher.Count | Should -Be 1
        $launcher[0] | Should -Match 'requiem-launch is not used: .*built for ELF machine .*this process runs on'
        $launcher[0] | Should -Match 'Fix: build the launcher for'
        ($Result.Notes -join ' ') | Should -Match 'ELF machine'
    }

    It 'still runs commands through the tool chain' {
        $Result.Stdout | Should -Be "packaged`nagain`n"
    }
}
