# Builds realistic execution requests and results for proof tests, benchmarks and the demo, WITHOUT the exec
# engine: blobs are written straight into the CAS's documented on-disk layout (objects/ab/<cas digest>), and the
# request_digest / result_digest are computed from hand-built canonical JSON with Get-RequiemDigest -Domain.
# This is an independent re-implementation of the exec contract's digest rules, not a call into the proof code.

function ConvertTo-FixtureCanonicalJson {
    # RFC 8785 for the value shapes the fixtures use (ASCII strings, integers, booleans, null, arrays, objects).
    param($Value)
    if ($null -eq $Value) { return 'null' }
    if ($Value -is [bool]) { return $Value ? 'true' : 'false' }
    if ($Value -is [int] -or $Value -is [long]) { return [string]$Value }
    if ($Value -is [string]) { return ($Value | ConvertTo-Json -Compress) }
    if ($Value -is [System.Collections.IDictionary]) {
        [string[]]$keys = @($Value.Keys)
        [Array]::Sort($keys, [StringComparer]::Ordinal)
        $members = foreach ($k in $keys) { ($k | ConvertTo-Json -Compress) + ':' + (ConvertTo-FixtureCanonicalJson $Value[$k]) }
        return '{' + ($members -join ',') + '}'
    }
    if ($Value -is [System.Collections.IEnumerable]) {
        $items = foreach ($i in $Value) { ConvertTo-FixtureCanonicalJson $i }
        return '[' + (@($items) -join ',') + ']'
    }
    throw "fixture JSON cannot encode $($Value.GetType())"
}

function Add-FixtureBlob {
    # Writes bytes into the CAS layout (creating the store if needed) and returns the cas: digest.
    param([string] $Cas, [byte[]] $Bytes)
    if (-not (Test-Path (Join-Path $Cas 'config'))) {
        New-Item -ItemType Directory -Force -Path $Cas | Out-Null
        Set-Content -LiteralPath (Join-Path $Cas 'config') -NoNewline -Value '{"cas_version":"v2","hash":"blake3","domain":"cas:","layout":"objects/xx/<hash>[.zst]"}'
    }
    $hash = (Get-RequiemDigest -InputObject $Bytes -Domain Cas).Hash
    $dir = Join-Path $Cas "objects/$($hash.Substring(0, 2))"
    New-Item -ItemType Directory -Force -Path $dir | Out-Null
    $file = Join-Path $dir $hash
    if (-not (Test-Path $file)) { [IO.File]::WriteAllBytes($file, $Bytes) }
    return $hash
}

function New-ProofFixture {
    <#
    .SYNOPSIS
        A request and a matching result whose blobs (stdout, stderr, output files, inputs, policy) are in -Cas.
        Returns Request (hashtable), RequestJson, RequestDigest, Result (JSON text), ResultDigest and the object digests.
    #>
    param(
        [Parameter(Mandatory)] [string] $Cas,
        [string] $Workspace = '/tmp/requiem-fixture',
        [string] $Stdout = "hi`n",
        [string] $Stderr = '',
        [hashtable] $OutputFiles = @{},
        [hashtable] $InputFiles = @{},
        [int] $Seed = 0
    )
    $utf8 = [Text.UTF8Encoding]::new($false)
    $policy = [ordered]@{ mode = 'strict'; scheduler_mode = 'repro'; deterministic = $true; deny_network = $true; env_allowlist = @('PATH'); env_denylist = @(); stochastic = $false }
    $policyDigest = Add-FixtureBlob -Cas $Cas -Bytes $utf8.GetBytes((ConvertTo-FixtureCanonicalJson $policy))
    $request = @{
        command        = '/bin/echo'
        argv           = @('hi', "seed-$Seed")
        workspace_root = $Workspace
        inputs         = @($InputFiles.Keys | Sort-Object)
        outputs        = @($OutputFiles.Keys | Sort-Object)
        policy         = @{ mode = 'strict'; deterministic = $true; deny_network = $true }
        timeout_ms     = 5000
    }
    $requestJson = ConvertTo-FixtureCanonicalJson $request
    $requestDigest = (Get-RequiemDigest -InputObject $requestJson -Domain Request).Hash

    $stdoutBytes = $utf8.GetBytes($Stdout)
    $stderrBytes = $utf8.GetBytes($Stderr)
    $stdoutDigest = Add-FixtureBlob -Cas $Cas -Bytes $stdoutBytes
    $stderrDigest = Add-FixtureBlob -Cas $Cas -Bytes $stderrBytes
    $outputs = foreach ($p in ($OutputFiles.Keys | Sort-Object)) {
        $b = $utf8.GetBytes($OutputFiles[$p])
        [ordered]@{ path = $p; digest = (Add-FixtureBlob -Cas $Cas -Bytes $b); bytes = $b.Length }
    }
    $inputs = foreach ($p in ($InputFiles.Keys | Sort-Object)) {
        [ordered]@{ path = $p; digest = (Add-FixtureBlob -Cas $Cas -Bytes $utf8.GetBytes($InputFiles[$p])) }
    }
    $result = [ordered]@{
        contract_version       = '1.1'
        engine                 = 'requiem'
        engine_version         = '0.1.0'
        request_digest         = $requestDigest
        exit_code              = 0
        signal                 = $null
        timed_out              = $false
        stdout_digest          = $stdoutDigest
        stdout_bytes           = $stdoutBytes.Length
        stdout_truncated       = $false
        stderr_digest          = $stderrDigest
        stderr_bytes           = $stderrBytes.Length
        stderr_truncated       = $false
        output_files           = @($outputs)
        input_digests          = @($inputs)
        policy_digest          = $policyDigest
        sandbox                = [ordered]@{ enforced = @('rlimits', 'workspace_confinement'); not_enforced = @('seccomp_bpf') }
        determinism_confidence = [ordered]@{ level = 'high'; score = 1; reasons = @() }
    }
    $resultDigest = (Get-RequiemDigest -InputObject (ConvertTo-FixtureCanonicalJson $result) -Domain Result).Hash
    $result.duration_ms = 12 + $Seed
    $result.started_at = '2026-01-01T00:00:00.000Z'
    $result.result_digest = $resultDigest
    $resultJson = ConvertTo-FixtureCanonicalJson $result
    [pscustomobject]@{
        Cas           = $Cas
        Request       = $request
        RequestJson   = $requestJson
        RequestDigest = $requestDigest
        Result        = $resultJson
        ResultDigest  = $resultDigest
        StdoutDigest  = $stdoutDigest
        StderrDigest  = $stderrDigest
        PolicyDigest  = $policyDigest
        OutputDigests = @($outputs | ForEach-Object { $_.digest })
        InputDigests  = @($inputs | ForEach-Object { $_.digest })
    }
}
