# The Requiem CLI's command line over the Requiem module: `requiem <command> <subcommand> --flag value ...`.
# Started by bin/requiem (POSIX sh) or bin/requiem.cmd (Windows). JSON on stdout, messages on stderr.
# Exit codes: 0 success; 2 a finding (blockers, regression, failed verification, replay mismatch, unhealthy doctor,
# corrupt CAS, tampered proof, policy violation, invalid config); 1 usage and every other error.
# No param() block on purpose: every argument reaches $args as the literal string the caller typed.

$ErrorActionPreference = 'Stop'

# bin/requiem sends 'requiem-args-v1' and then each argument behind a '+' (so that pwsh -File, which drops '--%' and
# splits '-name:value', passes them untouched); a direct `pwsh -File requiem-cli.ps1 ...` passes them as they are.
$CliArgs = if ($args.Count -gt 0 -and $args[0] -ceq 'requiem-args-v1') {
    @($args | Select-Object -Skip 1 | ForEach-Object { ([string]$_).Substring(1) })
} else { @($args) }
$ProgressPreference = 'SilentlyContinue'
$ConfirmPreference = 'None'
Set-StrictMode -Version Latest
if ($PSStyle) { $PSStyle.OutputRendering = 'PlainText' }

# Only the JSON (or text) this script writes goes to stdout: whatever the host would print (warnings, Write-Host,
# WhatIf lines, error records) goes to stderr, so `requiem ... | jq` and `$(requiem ...)` see nothing else.
$Utf8 = [System.Text.UTF8Encoding]::new($false)
$StdOut = [System.IO.StreamWriter]::new([Console]::OpenStandardOutput(), $Utf8)
$StdOut.AutoFlush = $true
$StdErr = [System.IO.StreamWriter]::new([Console]::OpenStandardError(), $Utf8)
$StdErr.AutoFlush = $true
[Console]::SetOut($StdErr)

$JsonOptions = [System.Text.Json.JsonSerializerOptions]::new()
$JsonOptions.Encoder = [System.Text.Encodings.Web.JavaScriptEncoder]::UnsafeRelaxedJsonEscaping

$Usage = @'
usage: requiem [--allow-hash-fallback] <command> [flags]

  exec run --request <json> [--out <json>] [--engine requiem|rust|external|dual] [--cas <dir>]
  exec replay --request <json> --result <json> [--cas <dir>]
  digest verify --result <json> [--request <json>]
  digest file --file <path>
  cas put --in <file> [--cas <dir>] [--compress zstd|identity]
  cas info --hash <digest> [--cas <dir>]
  cas verify [--cas <dir>] [--all | --sample N]
  cas stats [--cas <dir>] [--top N]
  cas gc [--cas <dir>] [--execute] [--grace-days N]
  health
  doctor [--cas <dir>]
  validate-replacement [--cas <dir>]
  metrics [--format json|prom]
  config validate --file <path>
  proof generate --request <json> --result <json> [--out <json>] [--cas <dir>] [--signing-key <pem>]
  proof verify --bundle <file> [--cas <dir>] [--public-key <pem>]
  bench run --spec <json> [--out <json>]
  bench compare --baseline <json> --current <json> [--out <json>] [--threshold P]
  bench gate --baseline <json> --current <json> [--threshold P] [--out <json>]
  drift analyze --bench <json> [--out <json>] [--cas <dir>]
  drift pretty --in <json>
  policy explain
  policy check --request <json>
  llm explain

Exit codes: 0 success, 2 finding (blockers, regression, failed verification, replay mismatch,
unhealthy doctor, corrupt CAS, tampered proof), 1 usage or error (message on stderr).
Each command's cmdlet equivalent: docs/CLI.md in the module's repository.
'@

# A usage error: an ArgumentException marked in its Data (no PowerShell class: compiling one costs a start-up).
function New-UsageError([string] $Message) {
    $e = [System.ArgumentException]::new($Message)
    $e.Data['RequiemUsage'] = $true
    $e
}

# command -> flags it takes: 'value' takes an argument, 'switch' does not; Required lists the flags that must be given.
$Grammar = [ordered]@{
    'exec run'             = @{ Flags = @{ request = 'value'; out = 'value'; engine = 'value'; cas = 'value' }; Required = @('request') }
    'exec replay'          = @{ Flags = @{ request = 'value'; result = 'value'; cas = 'value' }; Required = @('request', 'result') }
    'digest verify'        = @{ Flags = @{ result = 'value'; request = 'value' }; Required = @('result') }
    'digest file'          = @{ Flags = @{ file = 'value' }; Required = @('file') }
    'cas put'              = @{ Flags = @{ in = 'value'; cas = 'value'; compress = 'value' }; Required = @('in') }
    'cas info'             = @{ Flags = @{ hash = 'value'; cas = 'value' }; Required = @('hash') }
    'cas verify'           = @{ Flags = @{ cas = 'value'; all = 'switch'; sample = 'value' }; Required = @() }
    'cas stats'            = @{ Flags = @{ cas = 'value'; top = 'value' }; Required = @() }
    'cas gc'               = @{ Flags = @{ cas = 'value'; execute = 'switch'; json = 'switch'; 'grace-days' = 'value' }; Required = @() }
    'health'               = @{ Flags = @{}; Required = @() }
    'doctor'               = @{ Flags = @{ cas = 'value' }; Required = @() }
    'validate-replacement' = @{ Flags = @{ cas = 'value' }; Required = @() }
    'metrics'              = @{ Flags = @{ format = 'value' }; Required = @() }
    'config validate'      = @{ Flags = @{ file = 'value' }; Required = @('file') }
    'proof generate'       = @{ Flags = @{ request = 'value'; result = 'value'; out = 'value'; cas = 'value'; 'signing-key' = 'value' }; Required = @('request', 'result') }
    'proof verify'         = @{ Flags = @{ bundle = 'value'; cas = 'value'; 'public-key' = 'value' }; Required = @('bundle') }
    'bench run'            = @{ Flags = @{ spec = 'value'; out = 'value'; cas = 'value' }; Required = @('spec') }
    'bench compare'        = @{ Flags = @{ baseline = 'value'; current = 'value'; out = 'value'; threshold = 'value' }; Required = @('baseline', 'current') }
    'bench gate'           = @{ Flags = @{ baseline = 'value'; current = 'value'; threshold = 'value'; out = 'value' }; Required = @('baseline', 'current') }
    'drift analyze'        = @{ Flags = @{ bench = 'value'; out = 'value'; cas = 'value' }; Required = @('bench') }
    'drift pretty'         = @{ Flags = @{ in = 'value' }; Required = @('in') }
    'policy explain'       = @{ Flags = @{}; Required = @() }
    'policy check'         = @{ Flags = @{ request = 'value' }; Required = @('request') }
    'llm explain'          = @{ Flags = @{}; Required = @() }
}

$PathFlags = @('request', 'out', 'result', 'file', 'in', 'cas', 'spec', 'baseline', 'current', 'bench', 'bundle', 'signing-key', 'public-key')

function Split-CommandLine([string[]] $Arguments) {
    $global = @{ AllowHashFallback = $false; Help = $false; Version = $false }
    $words = [System.Collections.Generic.List[string]]::new()
    $rest = [System.Collections.Generic.List[string]]::new()
    foreach ($a in $Arguments) {
        switch -CaseSensitive ($a) {
            '--allow-hash-fallback' { $global.AllowHashFallback = $true; continue }
            { $_ -in '--help', '-h', 'help' } { $global.Help = $true; continue }
            '--version' { $global.Version = $true; continue }
            default { $rest.Add($a) }
        }
    }
    # The command is the leading words that are not flags: one word ("health") or two ("cas put").
    $i = 0
    while ($i -lt $rest.Count -and $words.Count -lt 2 -and -not $rest[$i].StartsWith('-')) { $words.Add($rest[$i]); $i++ }
    $name = $null
    if ($words.Count -ge 1 -and $Grammar.Contains($words[0])) {
        $name = $words[0]
        if ($words.Count -eq 2) { $i-- }   # a one-word command: the second word is an unexpected argument
    }
    elseif ($words.Count -eq 2) { $name = "$($words[0]) $($words[1])" }
    if ($global.Help -or $global.Version) { return [pscustomobject]@{ Global = $global; Name = $name; Flags = @{} } }
    if ($words.Count -eq 0) { throw (New-UsageError 'no command given') }
    if ($null -eq $name -or -not $Grammar.Contains($name)) {
        $known = @($Grammar.Keys | Where-Object { $_.StartsWith($words[0] + ' ') } | ForEach-Object { $_.Split(' ')[1] })
        if ($known) { throw (New-UsageError "unknown subcommand '$($words -join ' ')'; '$($words[0])' takes: $($known -join ', ')") }
        throw (New-UsageError "unknown command '$($words -join ' ')'")
    }
    $spec = $Grammar[$name]
    $flags = @{}
    for (; $i -lt $rest.Count; $i++) {
        $token = $rest[$i]
        if (-not $token.StartsWith('--') -or $token.Length -le 2) { throw (New-UsageError "$name`: unexpected argument '$token'") }
        $flag = $token.Substring(2); $value = $null
        $eq = $flag.IndexOf('=')
        if ($eq -ge 0) { $value = $flag.Substring($eq + 1); $flag = $flag.Substring(0, $eq) }
        if (-not $spec.Flags.ContainsKey($flag)) {
            $takes = if ($spec.Flags.Count) { ($spec.Flags.Keys | Sort-Object | ForEach-Object { "--$_" }) -join ', ' } else { 'no flags' }
            throw (New-UsageError "$name`: unknown flag '--$flag' (takes: $takes)")
        }
        if ($flags.ContainsKey($flag)) { throw (New-UsageError "$name`: --$flag given twice") }
        if ($spec.Flags[$flag] -eq 'switch') {
            if ($null -ne $value) { throw (New-UsageError "$name`: --$flag takes no value") }
            $flags[$flag] = $true
            continue
        }
        if ($null -eq $value) {
            if ($i + 1 -ge $rest.Count) { throw (New-UsageError "$name`: --$flag needs a value") }
            $value = $rest[++$i]
        }
        if ($value -eq '') { throw (New-UsageError "$name`: --$flag needs a non-empty value") }
        # A file name is a file name, as for the Requiem CLI: made absolute here, so PowerShell never reads a relative
        # 'x:y' as drive x, nor wildcards in it.
        if ($flag -in $PathFlags) { $value = [System.IO.Path]::GetFullPath($value, (Get-Location -PSProvider FileSystem).ProviderPath) }
        $flags[$flag] = $value
    }
    foreach ($r in $spec.Required) {
        if (-not $flags.ContainsKey($r)) { throw (New-UsageError "$name`: --$r is required") }
    }
    [pscustomobject]@{ Global = $global; Name = $name; Flags = $flags }
}

function Get-IntFlag([hashtable] $Flags, [string] $Name, [int] $Minimum) {
    $n = 0
    if (-not [int]::TryParse($Flags[$Name], [System.Globalization.NumberStyles]::None, [cultureinfo]::InvariantCulture, [ref] $n) -or $n -lt $Minimum) {
        throw (New-UsageError "--$Name must be a whole number of at least $Minimum, not '$($Flags[$Name])'")
    }
    $n
}

function Get-NumberFlag([hashtable] $Flags, [string] $Name) {
    $d = 0.0
    if (-not [double]::TryParse($Flags[$Name], [System.Globalization.NumberStyles]::Float, [cultureinfo]::InvariantCulture, [ref] $d) -or
        [double]::IsNaN($d) -or [double]::IsInfinity($d) -or $d -lt 0) {
        throw (New-UsageError "--$Name must be a number of at least 0, not '$($Flags[$Name])'")
    }
    $d
}

function ConvertTo-SnakeCase([string] $Name) {
    [regex]::Replace($Name, '(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])', '_').ToLowerInvariant()
}

function New-Pair([string] $Name, $Value) {
    $pair = [object[]]::new(2)
    $pair[0] = $Name; $pair[1] = $Value
    , $pair
}

# A pipeline record as the contract's JSON: PascalCase properties -> snake_case members, enums as snake_case strings,
# times as ISO 8601 UTC, durations as milliseconds (member name + _ms). Dictionary keys are data and stay as they are.
function ConvertTo-JsonNode($Value, [string[]] $Skip = @()) {
    if ($null -eq $Value) { return $null }
    if ($Value -is [psobject] -and $Value.psobject.BaseObject -isnot [System.Management.Automation.PSCustomObject]) { $Value = $Value.psobject.BaseObject }
    if ($Value -is [System.Text.Json.Nodes.JsonNode]) { return , $Value.DeepClone() }
    if ($Value -is [string] -or $Value -is [char]) { return [System.Text.Json.Nodes.JsonValue]::Create([string]$Value) }
    if ($Value -is [bool]) { return [System.Text.Json.Nodes.JsonValue]::Create([bool]$Value) }
    if ($Value -is [enum]) { return [System.Text.Json.Nodes.JsonValue]::Create((ConvertTo-SnakeCase $Value.ToString())) }
    if ($Value -is [datetime]) { return [System.Text.Json.Nodes.JsonValue]::Create($Value.ToUniversalTime().ToString('yyyy-MM-ddTHH:mm:ss.fffZ', [cultureinfo]::InvariantCulture)) }
    if ($Value -is [datetimeoffset]) { return [System.Text.Json.Nodes.JsonValue]::Create($Value.UtcDateTime.ToString('yyyy-MM-ddTHH:mm:ss.fffZ', [cultureinfo]::InvariantCulture)) }
    if ($Value -is [timespan]) { return [System.Text.Json.Nodes.JsonValue]::Create([math]::Round($Value.TotalMilliseconds, 3)) }
    if ($Value -is [int] -or $Value -is [long] -or $Value -is [short] -or $Value -is [byte] -or $Value -is [uint32] -or $Value -is [uint64]) {
        return [System.Text.Json.Nodes.JsonValue]::Create([long]$Value)
    }
    if ($Value -is [double] -or $Value -is [float] -or $Value -is [decimal]) { return [System.Text.Json.Nodes.JsonValue]::Create([double]$Value) }
    if ($Value -is [System.Collections.IDictionary]) {
        $o = [System.Text.Json.Nodes.JsonObject]::new()
        foreach ($k in $Value.Keys) { $o.Add([string]$k, (ConvertTo-JsonNode $Value[$k])) }
        return , $o
    }
    if ($Value -is [System.Collections.IEnumerable]) {
        $a = [System.Text.Json.Nodes.JsonArray]::new()
        foreach ($item in $Value) { $a.Add([System.Text.Json.Nodes.JsonNode](ConvertTo-JsonNode $item)) }
        return , $a
    }
    $o = [System.Text.Json.Nodes.JsonObject]::new()
    # Values are read directly, never through the pipeline, which would unroll a collection (an empty list into $null).
    $pairs = [System.Collections.Generic.List[object]]::new()
    if ($Value -is [System.Management.Automation.PSCustomObject]) {
        foreach ($p in $Value.psobject.Properties) { $pairs.Add((New-Pair $p.Name $p.Value)) }
    }
    else {
        foreach ($p in $Value.GetType().GetProperties([System.Reflection.BindingFlags] 'Public, Instance')) {
            if ($p.CanRead -and $p.GetIndexParameters().Count -eq 0) { $pairs.Add((New-Pair $p.Name $p.GetValue($Value))) }
        }
    }
    foreach ($pair in $pairs) {
        if ($pair[0] -in $Skip) { continue }
        $key = ConvertTo-SnakeCase $pair[0]
        if ($pair[1] -is [timespan]) { $key += '_ms' }
        $o.Add($key, (ConvertTo-JsonNode $pair[1]))
    }
    , $o
}

# Writes one JSON document on one line: a JsonNode, or JSON text (re-serialised compactly).
function Write-Json($Node) {
    if ($Node -is [string]) { $Node = [System.Text.Json.Nodes.JsonNode]::Parse($Node) }
    $StdOut.Write($Node.ToJsonString($JsonOptions) + "`n")
}

function Get-CasArgument([hashtable] $Flags) { if ($Flags.ContainsKey('cas')) { @{ Cas = $Flags.cas } } else { @{} } }
# Splatting needs a variable: handlers write `$c = Get-CasArgument $f` and then `@c`.

# Each handler returns the exit code; it writes its document with Write-Json.
$Handlers = @{
    'exec run' = {
        param($f)
        $engine = if ($f.ContainsKey('engine')) { $f.engine } else { 'requiem' }
        if ($engine -notin 'requiem', 'rust', 'external', 'dual') { throw (New-UsageError "exec run: --engine must be requiem, rust, external or dual, not '$engine'") }
        if ($engine -eq 'rust') { $engine = 'external' }   # the Requiem CLI's name for the other engine
        # The result document is the -OutFile document (a temp file when --out is not given), so stdout and --out agree.
        $out = if ($f.ContainsKey('out')) { $f.out } else { Join-Path ([System.IO.Path]::GetTempPath()) ("requiem-result-" + [guid]::NewGuid().ToString('n') + '.json') }
        try {
            $c = Get-CasArgument $f
            $result = Invoke-RequiemExec -Request $f.request -OutFile $out -Engine $engine @c
            if ($null -eq $result) { throw 'exec run: no result was produced' }
            Write-Json ([System.IO.File]::ReadAllText((Resolve-Path -LiteralPath $out).ProviderPath))
        }
        finally { if (-not $f.ContainsKey('out')) { Remove-Item -LiteralPath $out -ErrorAction Ignore } }
        0
    }
    'exec replay' = {
        param($f)
        $c = Get-CasArgument $f
        $r = Invoke-RequiemReplay -Request $f.request -Result $f.result @c
        Write-Json (ConvertTo-JsonNode $r -Skip 'Recorded', 'Replayed')
        if ($r.Match) { 0 } else { 2 }
    }
    'digest verify' = {
        param($f)
        $p = @{ Result = $f.result }
        if ($f.ContainsKey('request')) { $p.Request = $f.request }
        $v = Test-RequiemDigest @p
        Write-Json (ConvertTo-JsonNode $v)
        if ($v.Valid -and $v.RequestDigestValid -ne $false) { 0 } else { 2 }
    }
    'digest file' = {
        param($f)
        Write-Json (ConvertTo-JsonNode (Get-RequiemDigest -LiteralPath $f.file))
        0
    }
    'cas put' = {
        param($f)
        $p = Get-CasArgument $f
        if ($f.ContainsKey('compress')) {
            if ($f.compress -notin 'zstd', 'identity', 'none', 'off') { throw (New-UsageError "cas put: --compress must be zstd or identity, not '$($f.compress)'") }
            $p.Compress = if ($f.compress -eq 'zstd') { 'Zstd' } else { 'Identity' }
        }
        Write-Json (ConvertTo-JsonNode (Add-RequiemCasObject -LiteralPath $f.in @p))
        0
    }
    'cas info' = {
        param($f)
        $c = Get-CasArgument $f
        Write-Json (ConvertTo-JsonNode (Get-RequiemCasObject -Hash $f.hash @c))
        0
    }
    'cas verify' = {
        param($f)
        $p = Get-CasArgument $f
        if ($f.ContainsKey('all') -and $f.ContainsKey('sample')) { throw (New-UsageError 'cas verify: give --all or --sample N, not both') }
        if ($f.ContainsKey('sample')) { $p.Sample = Get-IntFlag $f 'sample' 1 } else { $p.All = $true }
        $r = Test-RequiemCas @p
        Write-Json (ConvertTo-JsonNode $r)
        if ($r.Valid) { 0 } else { 2 }
    }
    'cas stats' = {
        param($f)
        $p = Get-CasArgument $f
        if ($f.ContainsKey('top')) { $p.Top = Get-IntFlag $f 'top' 0 }
        Write-Json (ConvertTo-JsonNode (Get-RequiemCasStatistic @p))
        0
    }
    'cas gc' = {
        param($f)
        $p = Get-CasArgument $f
        if ($f.ContainsKey('grace-days')) { $p.GracePeriod = [timespan]::FromDays((Get-IntFlag $f 'grace-days' 0)) }
        # Without --execute it is the dry run (-WhatIf); its "What if:" lines go to stderr with the rest of the host.
        $r = if ($f.ContainsKey('execute')) { Optimize-RequiemCas @p -Force -Confirm:$false } else { Optimize-RequiemCas @p -WhatIf }
        Write-Json (ConvertTo-JsonNode $r)
        0
    }
    'health' = {
        param($f)
        Write-Json (Get-RequiemHealth -AsJson)
        0
    }
    'doctor' = {
        param($f)
        $c = Get-CasArgument $f
        $json = Test-RequiemHealth -AsJson @c
        Write-Json $json
        if ((ConvertFrom-Json $json).ok) { 0 } else { 2 }
    }
    'validate-replacement' = {
        param($f)
        $c = Get-CasArgument $f
        $json = Test-RequiemReplacement -AsJson @c
        Write-Json $json
        if ((ConvertFrom-Json $json).ok) { 0 } else { 2 }
    }
    'metrics' = {
        param($f)
        $format = if ($f.ContainsKey('format')) { $f.format } else { 'json' }
        switch ($format) {
            'json' { Write-Json (Get-RequiemMetric -Format Json) }
            { $_ -in 'prom', 'prometheus' } { $StdOut.Write(((Get-RequiemMetric -Format Prometheus) -join "`n").TrimEnd("`n") + "`n") }
            default { throw (New-UsageError "metrics: --format must be json or prom, not '$format'") }
        }
        0
    }
    'config validate' = {
        param($f)
        $v = Test-RequiemConfig -LiteralPath $f.file
        Write-Json (ConvertTo-JsonNode $v)
        if ($v.Valid) { 0 } else { 2 }
    }
    'proof generate' = {
        param($f)
        $p = Get-CasArgument $f
        if ($f.ContainsKey('out')) { $p.OutFile = $f.out }
        if ($f.ContainsKey('signing-key')) { $p.SigningKey = $f['signing-key'] }
        $proof = New-RequiemProof -Request $f.request -Result $f.result @p
        Write-Json $proof.Json
        0
    }
    'proof verify' = {
        param($f)
        $p = Get-CasArgument $f
        if ($f.ContainsKey('public-key')) { $p.PublicKey = $f['public-key'] }
        $v = Test-RequiemProof -LiteralPath $f.bundle @p
        Write-Json (ConvertTo-JsonNode $v -Skip 'Bundle', 'RequestJson', 'ResultJson')
        if ($v.Valid) { 0 } else { 2 }
    }
    'bench run' = {
        param($f)
        $p = Get-CasArgument $f
        if ($f.ContainsKey('out')) { $p.OutFile = $f.out }
        $report = Invoke-RequiemBench -Spec $f.spec @p
        Write-Json $report.ToJson($false)
        0
    }
    'bench compare' = {
        param($f)
        $p = @{ Baseline = $f.baseline; Current = $f.current }
        if ($f.ContainsKey('out')) { $p.OutFile = $f.out }
        if ($f.ContainsKey('threshold')) { $p.Threshold = Get-NumberFlag $f 'threshold' }
        Write-Json (Compare-RequiemBench @p).ToJson($false)
        0
    }
    'bench gate' = {
        param($f)
        $p = @{ Baseline = $f.baseline; Current = $f.current }
        if ($f.ContainsKey('out')) { $p.OutFile = $f.out }
        if ($f.ContainsKey('threshold')) { $p.Threshold = Get-NumberFlag $f 'threshold' }
        $c = Compare-RequiemBench @p
        Write-Json $c.ToJson($false)
        if ($c.Regressed) {
            $StdErr.WriteLine("requiem: performance regression in: $($c.RegressedCases -join ', ')")
            return 2
        }
        0
    }
    'drift analyze' = {
        param($f)
        $p = Get-CasArgument $f
        if ($f.ContainsKey('out')) { $p.OutFile = $f.out }
        Write-Json (Measure-RequiemDrift -Bench $f.bench @p).ToJson($false)
        0
    }
    'drift pretty' = {
        param($f)
        $report = Measure-RequiemDrift -Report $f.in
        $StdOut.Write($report.ToPrettyString())
        0
    }
    'policy explain' = {
        param($f)
        Write-Json (ConvertTo-JsonNode (Get-RequiemPolicy))
        0
    }
    'policy check' = {
        param($f)
        $v = Test-RequiemPolicy -Request $f.request
        Write-Json (ConvertTo-JsonNode $v)
        if ($v.Valid) { 0 } else { 2 }
    }
    'llm explain' = {
        param($f)
        Write-Json (ConvertTo-JsonNode @(Get-RequiemPolicy -Llm))
        0
    }
}

function Get-ErrorMessage($ErrorRecord) {
    $message = if ($ErrorRecord.Exception) { $ErrorRecord.Exception.Message } else { "$ErrorRecord" }
    $id = ($ErrorRecord.FullyQualifiedErrorId -split ',')[0]
    if ($id -and $id -notin 'RuntimeException', 'System.Management.Automation.RuntimeException' -and $message -notmatch [regex]::Escape($id)) { "$message [$id]" } else { $message }
}

$exitCode = 1
try {
    $command = Split-CommandLine $CliArgs
    if ($command.Global.Help) { $StdOut.Write($Usage + "`n"); exit 0 }
    if ($command.Global.Version) {
        $manifest = Import-PowerShellDataFile -LiteralPath (Join-Path $PSScriptRoot '../Requiem.psd1')
        $StdOut.Write("requiem $($manifest.ModuleVersion)`n"); exit 0
    }
    Import-Module (Join-Path $PSScriptRoot '../Requiem.psd1') -ErrorAction Stop
    if ($command.Global.AllowHashFallback) {
        # Every cmdlet that digests takes -AllowHashFallback; the others open stores that record their algorithm.
        $PSDefaultParameterValues['*-Requiem*:AllowHashFallback'] = $true
    }
    $exitCode = [int]@(& $Handlers[$command.Name] $command.Flags)[-1]
}
catch {
    if ($_.Exception.Data['RequiemUsage']) {
        $StdErr.WriteLine("requiem: $($_.Exception.Message)")
        $StdErr.WriteLine("Run 'requiem --help' for the commands and their flags.")
    }
    else { $StdErr.WriteLine("requiem: $(Get-ErrorMessage $_)") }
    $exitCode = 1
}
finally {
    $StdOut.Flush()
    $StdErr.Flush()
}
exit $exitCode
