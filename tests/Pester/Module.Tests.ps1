BeforeDiscovery {
    Import-Module (Join-Path $PSScriptRoot '../../out/Requiem/Requiem.psd1')
    $DiscoveredCmdlets = @(Get-Command -Module Requiem -CommandType Cmdlet)
}

BeforeAll {
    . (Join-Path $PSScriptRoot 'TestSetup.ps1')
    $script:Commands = Get-Command -Module Requiem -CommandType Cmdlet
}

Describe 'Module manifest and layout' {
    It 'exports only cmdlets, all with approved verbs and the Requiem noun prefix' {
        $Commands.Count | Should -BeGreaterThan 1
        $approved = (Get-Verb).Verb
        foreach ($c in $Commands) {
            $approved | Should -Contain $c.Verb -Because "$($c.Name) must use an approved verb"
            $c.Noun | Should -BeLike 'Requiem*'
        }
        (Get-Module Requiem).ExportedFunctions.Count | Should -Be 0
        (Get-Module Requiem).ExportedAliases.Count | Should -Be 0
    }

    It 'lists every exported cmdlet explicitly in the manifest' {
        $manifest = Import-PowerShellDataFile $ModulePath
        $manifest.CmdletsToExport | Should -Not -Contain '*'
        foreach ($c in $Commands) { $manifest.CmdletsToExport | Should -Contain $c.Name }
        $manifest.PowerShellVersion | Should -Be '7.4'
        $manifest.CompatiblePSEditions | Should -Be @('Core')
    }

    It 'keeps the engine and third-party DLLs in dependencies/' {
        $root = Split-Path $ModulePath
        Test-Path (Join-Path $root 'dependencies/Requiem.Engine.dll') | Should -BeTrue
        Test-Path (Join-Path $root 'dependencies/ZstdSharp.dll') | Should -BeTrue
        # The module hashes with its own BLAKE3; the Blake3 package is only the unit tests' reference.
        Test-Path (Join-Path $root 'dependencies/Blake3.dll') | Should -BeFalse
        Test-Path (Join-Path $root 'Blake3.dll') | Should -BeFalse
    }
}

Describe 'Help for <_.Name>' -ForEach $DiscoveredCmdlets {
    BeforeAll {
        $script:Help = Get-Help $_.Name -Full
        $script:Command = $_
    }

    It 'has a synopsis and a description' {
        $Help.Synopsis | Should -Not -BeNullOrEmpty
        $Help.Synopsis | Should -Not -BeLike "*$($Command.Name)*[<]*"   # not the auto-generated syntax stub
        ($Help.Description.Text -join '') | Should -Not -BeNullOrEmpty
    }

    It 'has at least one example with code' {
        @($Help.Examples.Example).Count | Should -BeGreaterThan 0
        @($Help.Examples.Example)[0].Code | Should -Not -BeNullOrEmpty
    }

    It 'describes every parameter' {
        $common = [System.Management.Automation.PSCmdlet]::CommonParameters + [System.Management.Automation.PSCmdlet]::OptionalCommonParameters
        foreach ($p in $Command.Parameters.Keys | Where-Object { $_ -notin $common }) {
            $ph = $Help.Parameters.Parameter | Where-Object Name -eq $p
            $ph | Should -Not -BeNullOrEmpty -Because "-$p of $($Command.Name) needs a help entry"
            ($ph.Description.Text -join '') | Should -Not -BeNullOrEmpty -Because "-$p of $($Command.Name) needs a description"
        }
    }
}

Describe 'Dependency isolation' {
    It 'hashes correctly even when another Blake3.dll is already loaded in the session' {
        $dir = New-TestDirectory
        try {
            # A real assembly named Blake3 (another version, an impostor Hasher) loaded into the session first.
            Set-Content (Join-Path $dir 'Fake.csproj') '<Project Sdk="Microsoft.NET.Sdk"><PropertyGroup><TargetFramework>net8.0</TargetFramework><AssemblyName>Blake3</AssemblyName><Version>9.9.9</Version></PropertyGroup></Project>'
            Set-Content (Join-Path $dir 'Hasher.cs') 'namespace Blake3 { public sealed class Hasher { public static string Hash() => "impostor"; } }'
            & dotnet build (Join-Path $dir 'Fake.csproj') -o (Join-Path $dir 'bin') --nologo -v quiet | Out-Null
            $LASTEXITCODE | Should -Be 0
            $fake = Join-Path $dir 'bin/Blake3.dll'
            $out = Invoke-FreshPwsh -Script @"
`$ErrorActionPreference = 'Stop'
Add-Type -Path '$fake'
[Blake3.Hasher]::Hash()
Import-Module '$ModulePath'
(Get-RequiemDigest -InputObject 'hello').Hash
`$null = 'x' * 200 | Add-RequiemCasObject -Compress Zstd -Cas (Join-Path '$dir' 'cas')
[AppDomain]::CurrentDomain.GetAssemblies() | Where-Object { `$_.GetName().Name -in 'Blake3', 'Requiem.Engine', 'ZstdSharp' } | ForEach-Object { `$_.GetName().Name + ' ' + `$_.GetName().Version.ToString() + '@' + [Runtime.Loader.AssemblyLoadContext]::GetLoadContext(`$_).Name }
"@
            $out[0] | Should -Be 'impostor'
            $out[1] | Should -Be 'ea8f163db38682925e4491c5e58d4bb3506ef8c14eb78a86e908c5624a67200f'
            $out | Should -Contain 'Blake3 9.9.9.0@Default'
            # The engine hashes with its own BLAKE3 and loads no Blake3 assembly (the package is the reference its unit
            # tests check against); it and its third-party dependencies live in the private context, never in Default.
            $out | Where-Object { $_ -like 'Requiem.Engine *' } | Should -Match '@Requiem\.Dependencies$'
            $out | Where-Object { $_ -match '^Blake3 ' } | Should -Be 'Blake3 9.9.9.0@Default'
            $out | Where-Object { $_ -match '^ZstdSharp ' } | ForEach-Object { $_ | Should -Match '@Requiem\.Dependencies$' }
        }
        finally { Remove-Item -Recurse -Force $dir -ErrorAction Ignore }
    }
}
