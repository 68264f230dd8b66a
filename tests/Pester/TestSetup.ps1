# Dot-sourced by every *.Tests.ps1 in BeforeAll: imports the BUILT module (out/Requiem) and defines helpers.
$script:RepoRoot = (Resolve-Path (Join-Path $PSScriptRoot '../..')).Path
$script:ModulePath = Join-Path $RepoRoot 'out/Requiem/Requiem.psd1'
if (-not (Test-Path $ModulePath)) { throw "Build the module first: $ModulePath not found" }
$script:Pwsh = if ($env:REQUIEM_PWSH) { $env:REQUIEM_PWSH } else { Join-Path $PSHOME 'pwsh' }
Import-Module $ModulePath -Force:$false

function script:Invoke-FreshPwsh {
    # Runs a script in a new pwsh (no profile) and returns its output lines; throws on non-zero exit unless -AllowFailure.
    param([Parameter(Mandatory)] [string] $Script, [switch] $AllowFailure, [hashtable] $Environment = @{})
    $saved = @{}
    foreach ($k in $Environment.Keys) { $saved[$k] = [Environment]::GetEnvironmentVariable($k); [Environment]::SetEnvironmentVariable($k, $Environment[$k]) }
    try {
        $out = & $script:Pwsh -NoProfile -NonInteractive -Command $Script 2>&1
        if (-not $AllowFailure -and $LASTEXITCODE -ne 0) { throw "fresh pwsh exited $LASTEXITCODE`n$($out -join "`n")" }
        return $out
    }
    finally {
        foreach ($k in $saved.Keys) { [Environment]::SetEnvironmentVariable($k, $saved[$k]) }
    }
}

function script:New-TestDirectory {
    $d = Join-Path ([IO.Path]::GetTempPath()) ("requiem-test-" + [guid]::NewGuid().ToString('n'))
    New-Item -ItemType Directory -Path $d | Out-Null
    return $d
}

function script:New-PatternFile {
    # The BLAKE3 test-vector input pattern: byte i = i mod 251.
    param([string] $Path, [long] $Length)
    $bytes = [byte[]]::new($Length)
    for ($i = 0; $i -lt $Length; $i++) { $bytes[$i] = $i % 251 }
    [IO.File]::WriteAllBytes($Path, $bytes)
}
