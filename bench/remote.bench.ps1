#requires -Version 7.4
<#
.SYNOPSIS
    Remote store (Azure Blob Storage, against a local Azurite) throughput vs the SDK's plain upload and download of the
    same bytes (the floor), in one run:
      1. 1,000 x 64 KiB objects: Sync-RequiemCas (upload what the container lacks) vs BlobClient.UploadAsync of each
         file, 8 in flight; reading all of them on an empty agent (Get-RequiemCasObject: download, re-hash, publish,
         verify), once piped one hash at a time and once as one -Hash array (prefetched concurrently), vs
         BlobClient.DownloadToAsync of each, 8 in flight.
      2. one 256 MiB object: the same, one blob.
    Azurite: $env:REQUIEM_AZURITE_BLOB, azurite-blob on PATH, or out/azurite (npm install azurite --prefix out/azurite).
    Writes remote.json to -OutDirectory. Figures are one run each (Azurite on the same cores: compare ratios, not MB/s).
#>
param(
    [string] $ModulePath = (Join-Path $PSScriptRoot '../out/Requiem/Requiem.psd1'),
    [string] $OutDirectory = (Join-Path $PSScriptRoot '../out/bench'),
    [int] $SmallCount = 1000,
    [int] $SmallSize = 64KB,
    [int] $LargeMiB = 256,
    [int] $Parallel = 8,
    # Download rounds (Requiem piped, Requiem -Hash array, SDK, interleaved); medians are reported.
    [int] $Rounds = 3
)

$ErrorActionPreference = 'Stop'
Import-Module $ModulePath
New-Item -ItemType Directory -Force -Path $OutDirectory | Out-Null
$work = Join-Path ([IO.Path]::GetTempPath()) "requiem-remote-bench-$PID"
New-Item -ItemType Directory -Force -Path $work | Out-Null

$azurite = if ($env:REQUIEM_AZURITE_BLOB) { $env:REQUIEM_AZURITE_BLOB }
           elseif (Get-Command azurite-blob -CommandType Application -ErrorAction Ignore) { (Get-Command azurite-blob -CommandType Application)[0].Source }
           else { Join-Path $PSScriptRoot '../out/azurite/node_modules/.bin/azurite-blob' }
if (-not (Test-Path $azurite)) { Write-Warning "Azurite not found ($azurite): install it with 'npm install azurite --prefix out/azurite'"; exit 0 }

$l = [Net.Sockets.TcpListener]::new([Net.IPAddress]::Loopback, 0); $l.Start(); $port = $l.LocalEndpoint.Port; $l.Stop()
$proc = Start-Process -FilePath $azurite -PassThru -RedirectStandardOutput (Join-Path $work 'azurite.log') -RedirectStandardError (Join-Path $work 'azurite.err') -ArgumentList @(
    '--blobHost', '127.0.0.1', '--blobPort', $port, '--location', (Join-Path $work 'azurite'), '--skipApiVersionCheck', '--loose', '--silent', '--disableTelemetry')
for ($i = 0; $i -lt 300; $i++) {
    $c = [Net.Sockets.TcpClient]::new(); try { $c.Connect('127.0.0.1', $port); break } catch { Start-Sleep -Milliseconds 100 } finally { $c.Dispose() }
}
$cs = "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;BlobEndpoint=http://127.0.0.1:$port/devstoreaccount1;"

# The SDK as the module ships it (its own load context): the floor uses exactly the same client library.
$blobs = [AppDomain]::CurrentDomain.GetAssemblies() | Where-Object { $_.GetName().Name -eq 'Azure.Storage.Blobs' } | Select-Object -First 1
if (-not $blobs) {
    # Loaded on first use: one remote-less call makes the engine load it.
    $null = [AppDomain]::CurrentDomain.GetAssemblies() | Where-Object { $_.GetName().Name -eq 'Requiem.Engine' } |
        ForEach-Object { $_.GetType('Requiem.Engine.Cas.AzureBlobCasBackend')::new($cs, 'warmup').Description }
    $blobs = [AppDomain]::CurrentDomain.GetAssemblies() | Where-Object { $_.GetName().Name -eq 'Azure.Storage.Blobs' } | Select-Object -First 1
}
$containerType = $blobs.GetType('Azure.Storage.Blobs.BlobContainerClient')

function New-SdkContainer([string] $Name) {
    $c = $containerType::new($cs, $Name)
    $null = $c.CreateIfNotExists()
    $c
}

function Measure-Seconds([scriptblock] $Body) {
    [GC]::Collect()
    $sw = [Diagnostics.Stopwatch]::StartNew()
    & $Body | Out-Null
    $sw.Elapsed.TotalSeconds
}

# Wall time and this process's CPU time (the client's own work: Azurite runs in another process).
function Measure-WallAndCpu([scriptblock] $Body) {
    [GC]::Collect()
    $self = [Diagnostics.Process]::GetCurrentProcess()
    $cpu = $self.TotalProcessorTime
    $sw = [Diagnostics.Stopwatch]::StartNew()
    & $Body | Out-Null
    $wall = $sw.Elapsed.TotalSeconds
    $self.Refresh()
    [pscustomobject]@{ Wall = $wall; Cpu = ($self.TotalProcessorTime - $cpu).TotalSeconds }
}

function Get-Median([double[]] $Values) {
    $sorted = @($Values | Sort-Object)
    if ($sorted.Count % 2) { return $sorted[[int][Math]::Floor($sorted.Count / 2)] }
    ($sorted[$sorted.Count / 2 - 1] + $sorted[$sorted.Count / 2]) / 2
}

function Invoke-Scenario {
    param([string] $Name, [string[]] $Files)
    $bytes = ($Files | ForEach-Object { (Get-Item $_).Length } | Measure-Object -Sum).Sum
    Write-Host "== $Name ($($Files.Count) file(s), $([Math]::Round($bytes / 1MB, 1)) MiB) ==" -ForegroundColor Cyan

    # Requiem: the objects are stored while no remote is configured, then Sync-RequiemCas uploads them.
    Remove-Item Env:REQUIEM_REMOTE_CONNECTION_STRING, Env:REQUIEM_REMOTE_CONTAINER -ErrorAction Ignore
    $agentA = Join-Path $work "$Name-a"; $agentB = Join-Path $work "$Name-b"
    $hashes = @(Add-RequiemCasObject -LiteralPath $Files -Cas $agentA | ForEach-Object Hash)
    $env:REQUIEM_REMOTE_CONNECTION_STRING = $cs
    $env:REQUIEM_REMOTE_CONTAINER = "bench-$($Name.ToLowerInvariant())-requiem"
    $up = Measure-Seconds { $script:sync = Sync-RequiemCas -Cas $agentA -ThrottleLimit $Parallel }
    Write-Host "sync: $($script:sync.Uploaded) uploaded, $($script:sync.BytesUploaded) bytes, $($script:sync.Duration)"
    if ($script:sync.Uploaded -ne $Files.Count -or $script:sync.BytesUploaded -lt $bytes) { throw "${Name}: Sync-RequiemCas uploaded $($script:sync.Uploaded) of $($Files.Count)" }
    Remove-Item Env:REQUIEM_REMOTE_CONNECTION_STRING, Env:REQUIEM_REMOTE_CONTAINER

    # The floor: the SDK's plain upload and download of the same files, $Parallel at once.
    $container = New-SdkContainer "bench-$($Name.ToLowerInvariant())-sdk"
    # $Parallel transfers in flight (the async API, in waves of $Parallel), each with the SDK's default transfer options.
    $sdkUp = Measure-Seconds {
        for ($i = 0; $i -lt $Files.Count; $i += $Parallel) {
            $tasks = foreach ($f in $Files[$i..([Math]::Min($i + $Parallel, $Files.Count) - 1)]) { $container.GetBlobClient([IO.Path]::GetFileName($f)).UploadAsync($f, $true) }
            [Threading.Tasks.Task]::WaitAll([Threading.Tasks.Task[]]$tasks)
        }
    }
    # Downloads, interleaved per round: Requiem piped one hash at a time on an empty agent, Requiem with all hashes as
    # one -Hash array on another (missing objects prefetched concurrently), and the SDK's plain download.
    $down = @(); $downBatch = @(); $sdkDown = @()
    foreach ($round in 1..$Rounds) {
        $env:REQUIEM_REMOTE_CONNECTION_STRING = $cs
        $env:REQUIEM_REMOTE_CONTAINER = "bench-$($Name.ToLowerInvariant())-requiem"
        $agentB = Join-Path $work "$Name-b$round"; $agentC = Join-Path $work "$Name-c$round"
        $down += Measure-WallAndCpu { $hashes | Get-RequiemCasObject -Cas $agentB }
        if ((Get-ChildItem -Recurse -File (Join-Path $agentB 'objects') | Measure-Object Length -Sum).Sum -ne $bytes) { throw "${Name}: agent B did not receive every object" }
        $downBatch += Measure-WallAndCpu { Get-RequiemCasObject -Hash $hashes -Cas $agentC }
        if ((Get-ChildItem -Recurse -File (Join-Path $agentC 'objects') | Measure-Object Length -Sum).Sum -ne $bytes) { throw "${Name}: agent C did not receive every object" }
        Remove-Item Env:REQUIEM_REMOTE_CONNECTION_STRING, Env:REQUIEM_REMOTE_CONTAINER
        $target = Join-Path $work "$Name-sdk-down$round"; New-Item -ItemType Directory $target | Out-Null
        $sdkDown += Measure-WallAndCpu {
            for ($i = 0; $i -lt $Files.Count; $i += $Parallel) {
                $tasks = foreach ($f in $Files[$i..([Math]::Min($i + $Parallel, $Files.Count) - 1)]) { $n = [IO.Path]::GetFileName($f); $container.GetBlobClient($n).DownloadToAsync((Join-Path $target $n)) }
                [Threading.Tasks.Task]::WaitAll([Threading.Tasks.Task[]]$tasks)
            }
        }
        if ((Get-ChildItem $target -File | Measure-Object Length -Sum).Sum -ne $bytes) { throw "${Name}: the SDK download is incomplete" }
        Remove-Item -Recurse -Force $agentB, $agentC, $target
        Write-Host ("round {0}: piped {1:n2} s, -Hash array {2:n2} s, SDK {3:n2} s (CPU {4:n2} / {5:n2} / {6:n2} s)" -f $round,
            $down[-1].Wall, $downBatch[-1].Wall, $sdkDown[-1].Wall, $down[-1].Cpu, $downBatch[-1].Cpu, $sdkDown[-1].Cpu)
    }
    $downCpu = Get-Median $down.Cpu; $downBatchCpu = Get-Median $downBatch.Cpu; $sdkDownCpu = Get-Median $sdkDown.Cpu
    $down = Get-Median $down.Wall; $downBatch = Get-Median $downBatch.Wall; $sdkDown = Get-Median $sdkDown.Wall

    $row = [ordered]@{
        files = $Files.Count; bytes = $bytes
        requiem_upload_s = [Math]::Round($up, 3); sdk_upload_s = [Math]::Round($sdkUp, 3)
        requiem_download_s = [Math]::Round($down, 3); requiem_download_batch_s = [Math]::Round($downBatch, 3); sdk_download_s = [Math]::Round($sdkDown, 3)
        requiem_upload_mib_s = [Math]::Round($bytes / 1MB / $up, 1); sdk_upload_mib_s = [Math]::Round($bytes / 1MB / $sdkUp, 1)
        requiem_download_mib_s = [Math]::Round($bytes / 1MB / $down, 1); sdk_download_mib_s = [Math]::Round($bytes / 1MB / $sdkDown, 1)
        upload_vs_sdk = [Math]::Round($up / $sdkUp, 2); download_vs_sdk = [Math]::Round($down / $sdkDown, 2)
        download_batch_vs_sdk = [Math]::Round($downBatch / $sdkDown, 2)
        rounds = $Rounds
        requiem_download_cpu_s = [Math]::Round($downCpu, 3); requiem_download_batch_cpu_s = [Math]::Round($downBatchCpu, 3); sdk_download_cpu_s = [Math]::Round($sdkDownCpu, 3)
    }
    $row.GetEnumerator() | ForEach-Object { '{0,-24} {1}' -f $_.Key, $_.Value } | Write-Host
    $row
}

$results = [ordered]@{
    machine = [ordered]@{ os = [Runtime.InteropServices.RuntimeInformation]::OSDescription; cores = [Environment]::ProcessorCount; load = (Get-Content /proc/loadavg -ErrorAction Ignore) }
    parallel = $Parallel
}
try {
    $small = Join-Path $work 'small'; New-Item -ItemType Directory $small | Out-Null
    $rng = [Random]::new(1); $buffer = [byte[]]::new($SmallSize)
    $smallFiles = foreach ($i in 1..$SmallCount) { $rng.NextBytes($buffer); $f = Join-Path $small "o$i.bin"; [IO.File]::WriteAllBytes($f, $buffer); $f }
    $results.small = Invoke-Scenario -Name 'Small' -Files $smallFiles

    $large = Join-Path $work 'large.bin'
    $fs = [IO.File]::Create($large); $chunk = [byte[]]::new(1MB)
    for ($i = 0; $i -lt $LargeMiB; $i++) { $rng.NextBytes($chunk); $fs.Write($chunk, 0, $chunk.Length) }
    $fs.Dispose()
    $results.large = Invoke-Scenario -Name 'Large' -Files @($large)
}
finally {
    if (-not $proc.HasExited) { Stop-Process -Id $proc.Id -Force; $proc.WaitForExit() }
    Remove-Item -Recurse -Force $work -ErrorAction Ignore
}
$results | ConvertTo-Json -Depth 5 | Set-Content -LiteralPath (Join-Path $OutDirectory 'remote.json')
Write-Host "Wrote $(Join-Path $OutDirectory 'remote.json')"
