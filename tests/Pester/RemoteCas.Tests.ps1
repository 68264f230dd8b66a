# The remote store (Azure Blob Storage through the official SDK) against Azurite, the Azure SDK team's emulator.
# Every agent is a local store of its own in front of one shared container. The tests start their own Azurite
# (npm package 'azurite', installed into out/azurite when not on PATH) on a free loopback port, so they run the same
# on a laptop and in .ci/run; they are skipped, saying why, only where neither Azurite nor npm exists.
BeforeAll {
    . (Join-Path $PSScriptRoot 'TestSetup.ps1')
    $script:Dir = New-TestDirectory
    $script:DevKey = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='

    function script:Find-Azurite {
        if ($env:REQUIEM_AZURITE_BLOB -and (Test-Path $env:REQUIEM_AZURITE_BLOB)) { return $env:REQUIEM_AZURITE_BLOB }
        $onPath = Get-Command azurite-blob -CommandType Application -ErrorAction Ignore | Select-Object -First 1
        if ($onPath) { return $onPath.Source }
        $prefix = Join-Path $script:RepoRoot 'out/azurite'
        $local = Join-Path $prefix 'node_modules/.bin/azurite-blob'
        if (-not (Test-Path $local) -and (Get-Command npm -CommandType Application -ErrorAction Ignore)) {
            New-Item -ItemType Directory -Force $prefix | Out-Null
            & npm install --prefix $prefix --no-audit --no-fund --loglevel=error azurite 2>&1 | Out-Null
        }
        if (Test-Path $local) { return $local }
        return $null
    }

    function script:Get-FreePort {
        $l = [Net.Sockets.TcpListener]::new([Net.IPAddress]::Loopback, 0)
        $l.Start(); $port = $l.LocalEndpoint.Port; $l.Stop()
        return $port
    }

    function script:Start-Azurite {
        param([int] $Port, [string] $Location)
        New-Item -ItemType Directory -Force $Location | Out-Null
        $log = Join-Path $Location 'azurite.log'
        $p = Start-Process -FilePath $script:AzuriteBin -PassThru -RedirectStandardOutput $log -RedirectStandardError "$log.err" -ArgumentList @(
            '--blobHost', '127.0.0.1', '--blobPort', $Port, '--location', $Location, '--skipApiVersionCheck', '--loose', '--silent', '--disableTelemetry')
        $deadline = [DateTime]::UtcNow.AddSeconds(60)
        while ([DateTime]::UtcNow -lt $deadline) {
            $c = [Net.Sockets.TcpClient]::new()
            try { $c.Connect('127.0.0.1', $Port); return $p } catch { Start-Sleep -Milliseconds 200 } finally { $c.Dispose() }
            if ($p.HasExited) { throw "Azurite exited: $(Get-Content -Raw $log -ErrorAction Ignore) $(Get-Content -Raw "$log.err" -ErrorAction Ignore)" }
        }
        throw "Azurite did not listen on $Port within 60 s"
    }

    function script:Stop-Azurite {
        param($Process)
        if ($Process -and -not $Process.HasExited) { Stop-Process -Id $Process.Id -Force; $Process.WaitForExit() }
    }

    function script:Get-ConnectionString {
        param([int] $Port)
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=$script:DevKey;BlobEndpoint=http://127.0.0.1:$Port/devstoreaccount1;"
    }

    function script:Use-Remote {
        # Points this session's cmdlets at one container of one Azurite.
        param([int] $Port, [string] $Container)
        $env:REQUIEM_REMOTE_CONNECTION_STRING = Get-ConnectionString $Port
        $env:REQUIEM_REMOTE_CONTAINER = $Container
    }

    # The engine loads in the module's own load context, so its types are found through its assembly.
    $script:Engine = [AppDomain]::CurrentDomain.GetAssemblies() | Where-Object { $_.GetName().Name -eq 'Requiem.Engine' } | Select-Object -First 1
    $script:Metrics = $script:Engine.GetType('Requiem.Engine.Metrics.MetricsRegistry')
    $script:CounterType = $script:Engine.GetType('Requiem.Engine.Metrics.Counter')

    function script:Get-Backend {
        param([int] $Port, [string] $Container)
        $script:Engine.GetType('Requiem.Engine.Cas.AzureBlobCasBackend')::new((Get-ConnectionString $Port), $Container)
    }

    function script:Get-RemoteCounter {
        param([string] $Name)
        $script:Metrics::Get([Enum]::Parse($script:CounterType, $Name))
    }

    function script:New-Store { Join-Path $script:Dir ('agent-' + [guid]::NewGuid().ToString('n').Substring(0, 8)) }
    function script:New-Container { 'c' + [guid]::NewGuid().ToString('n').Substring(0, 12) }

    function script:New-File {
        param([string] $Text)
        $f = Join-Path $script:Dir ([guid]::NewGuid().ToString('n') + '.txt')
        [IO.File]::WriteAllText($f, $Text)
        return $f
    }

    $script:AzuriteBin = Find-Azurite
    $script:Azurite = $null
    if ($script:AzuriteBin) {
        $script:Port = Get-FreePort
        $script:Azurite = Start-Azurite -Port $script:Port -Location (Join-Path $script:Dir 'azurite')
    }
}

AfterAll {
    Stop-Azurite $script:Azurite
    Remove-Item Env:REQUIEM_REMOTE_CONNECTION_STRING, Env:REQUIEM_REMOTE_CONTAINER -ErrorAction Ignore
    Remove-Item -Recurse -Force $script:Dir -ErrorAction Ignore
}

Describe 'Remote store: agents sharing one container' {
    BeforeEach {
        if (-not $script:Azurite) { Set-ItResult -Skipped -Because 'neither azurite-blob nor npm is available' }
    }

    It 'an object put on agent A is read on agent B, whose empty local store is filled and verifies' {
        Use-Remote $script:Port (New-Container)
        $a = New-Store; $b = New-Store
        $put = Add-RequiemCasObject -LiteralPath (New-File "shared by agents $(New-Guid)") -Cas $a
        $text = Export-RequiemCasObject -Hash $put.Hash -Cas $b -Raw
        $text | Should -BeLike 'shared by agents *'
        Test-Path (Join-Path $b "objects/$($put.Hash.Substring(0, 2))/$($put.Hash)") | Should -BeTrue
        (Test-RequiemCas -All -Cas $b).Valid | Should -BeTrue
    }

    It 'Get-RequiemCasObject -Hash with many hashes brings the missing objects down at once, each verified' {
        $container = New-Container
        Use-Remote $script:Port $container
        $a = New-Store
        $hashes = @(1..30 | ForEach-Object { (Add-RequiemCasObject -LiteralPath (New-File "batch $_ $(New-Guid)") -Cas $a -Compress $(if ($_ % 2) { 'Zstd' } else { 'None' })).Hash })
        $b = New-Store
        $infos = @(Get-RequiemCasObject -Hash $hashes -Cas $b)
        $infos.Count | Should -Be 30
        ($infos | Where-Object Verified).Count | Should -Be 30
        foreach ($h in $hashes) { Test-Path (Join-Path $b "objects/$($h.Substring(0, 2))/$h*") | Should -BeTrue }
        (Test-RequiemCas -All -Cas $b).Valid | Should -BeTrue
    }

    It 'refs travel with the objects (same names as the local layout)' {
        $container = New-Container
        Use-Remote $script:Port $container
        $a = New-Store
        $put = Add-RequiemCasObject -LiteralPath (New-File "ref target $(New-Guid)") -Cas $a
        Set-RequiemCasRef -Name 'builds/main' -Hash $put.Hash -Cas $a | Out-Null
        $names = (Get-Backend $script:Port $container).List('', [Threading.CancellationToken]::None).Name
        $names | Should -Contain "objects/$($put.Hash.Substring(0, 2))/$($put.Hash)"
        $names | Should -Contain 'refs/builds/main'
    }

    It 'a tampered blob is detected, not used, reported (typed error, warning, metric); the local store stays valid' {
        $container = New-Container
        Use-Remote $script:Port $container
        $a = New-Store; $b = New-Store
        $put = Add-RequiemCasObject -LiteralPath (New-File "to be tampered $(New-Guid)") -Cas $a
        $name = "objects/$($put.Hash.Substring(0, 2))/$($put.Hash)"
        $backend = Get-Backend $script:Port $container
        $backend.PutDocument($name, [ReadOnlyMemory[byte]]::new([Text.Encoding]::UTF8.GetBytes('evil bytes')), $true, [Threading.CancellationToken]::None) | Out-Null
        $before = (Get-RemoteCounter RemoteCorruptDetected)

        $err = $null
        Get-RequiemCasObject -Hash $put.Hash -Cas $b -ErrorVariable err -ErrorAction SilentlyContinue -WarningVariable warn -WarningAction SilentlyContinue | Should -BeNullOrEmpty
        $err[0].FullyQualifiedErrorId | Should -Be 'CasRemoteObjectCorrupt,Requiem.PowerShell.GetRequiemCasObjectCommand'
        ($warn -join "`n") | Should -Match 'corrupt and was not used'
        (Get-RemoteCounter RemoteCorruptDetected) | Should -BeGreaterThan $before
        Test-Path (Join-Path $b $name) | Should -BeFalse
        (Test-RequiemCas -All -Cas $b).Valid | Should -BeTrue

        $report = Test-RequiemCas -Remote -Cas $b
        $report.Valid | Should -BeFalse
        $report.Corrupt.Hash | Should -Contain $put.Hash
    }

    It 'a truncated blob is detected by Test-RequiemCas -Remote and -Quiet says $false' {
        $container = New-Container
        Use-Remote $script:Port $container
        $a = New-Store
        $file = Join-Path $script:Dir 'big.bin'
        New-PatternFile -Path $file -Length 300000
        $put = Add-RequiemCasObject -LiteralPath $file -Cas $a -Compress Zstd
        $name = "objects/$($put.Hash.Substring(0, 2))/$($put.Hash).zst"
        $backend = Get-Backend $script:Port $container
        $ms = [IO.MemoryStream]::new()
        $backend.Download($name, $ms, [Threading.CancellationToken]::None) | Should -BeTrue
        $half = $ms.ToArray()[0..([int]($ms.Length / 2))]
        $backend.PutDocument($name, [ReadOnlyMemory[byte]]::new([byte[]]$half), $true, [Threading.CancellationToken]::None) | Out-Null
        Test-RequiemCas -Remote -Cas $a -Quiet | Should -BeFalse
        (Test-RequiemCas -Remote -Cas (New-Store)).Corrupt.Hash | Should -Be $put.Hash
    }

    It 'four concurrent agents putting overlapping content: no errors, one blob per object, the remote verifies' {
        $container = New-Container
        Use-Remote $script:Port $container
        $src = Join-Path $script:Dir "overlap-$container"
        New-Item -ItemType Directory $src | Out-Null
        foreach ($i in 1..24) { [IO.File]::WriteAllText((Join-Path $src "f$i.txt"), "overlapping content $i $container") }
        $procs = foreach ($agent in 1..4) {
            # Agent n puts files n..n+17: every file is put by two to four agents at once.
            $script = "`$ErrorActionPreference = 'Stop'; Import-Module '$script:ModulePath'; " +
                "foreach (`$i in $agent..$($agent + 17)) { Add-RequiemCasObject -LiteralPath (Join-Path '$src' ('f' + `$i + '.txt')) -Cas '$(New-Store)' | Out-Null }"
            Start-Process -FilePath $script:Pwsh -ArgumentList '-NoProfile', '-NonInteractive', '-Command', $script -PassThru `
                -RedirectStandardError (Join-Path $src "err$agent.txt") -RedirectStandardOutput (Join-Path $src "out$agent.txt")
        }
        foreach ($p in $procs) { $p.WaitForExit(180000) | Should -BeTrue; $p.ExitCode | Should -Be 0 -Because (Get-Content -Raw (Join-Path $src "err$($procs.IndexOf($p) + 1).txt")) }
        $names = @((Get-Backend $script:Port $container).List('objects/', [Threading.CancellationToken]::None).Name)
        $names.Count | Should -Be 21   # files 1..21 are put by some agent; each is one blob
        ($names | Sort-Object -Unique).Count | Should -Be $names.Count
        (Test-RequiemCas -Remote -Cas (New-Store)).Valid | Should -BeTrue
    }

    It 'never shows the credential: not in -Verbose, warnings, errors or health' {
        Use-Remote $script:Port (New-Container)
        $a = New-Store
        $all = & { Add-RequiemCasObject -LiteralPath (New-File 'secret check') -Cas $a -Verbose; Get-RequiemHealth -AsJson; Sync-RequiemCas -Cas $a -Verbose } *>&1 | Out-String
        $all | Should -Not -Match ([regex]::Escape($script:DevKey.Substring(0, 20)))
        $health = Get-RequiemHealth -AsJson | ConvertFrom-Json
        $health.remote.configured | Should -BeTrue
        $health.remote.reachable | Should -BeTrue
    }

    It 'keeps a tenant''s blobs under tenants/<name>/ in the container: another tenant''s agent cannot read them' {
        $container = New-Container
        Use-Remote $script:Port $container
        $a = New-Store; $b = New-Store
        $put = Add-RequiemCasObject -LiteralPath (New-File "tenant secret $(New-Guid)") -Cas $a -Tenant 'team-a'
        $names = (Get-Backend $script:Port $container).List('', [Threading.CancellationToken]::None).Name
        $names | Should -Contain "tenants/team-a/objects/$($put.Hash.Substring(0, 2))/$($put.Hash)"
        $names | Should -Not -Contain "objects/$($put.Hash.Substring(0, 2))/$($put.Hash)"
        Get-RequiemCasObject -Hash $put.Hash -Cas $b -Tenant 'team-b' -ErrorAction SilentlyContinue -ErrorVariable err | Should -BeNullOrEmpty
        $err[0].FullyQualifiedErrorId | Should -BeLike 'CasObjectNotFound,*'
        (Export-RequiemCasObject -Hash $put.Hash -Cas $b -Tenant 'team-a' -Raw) | Should -BeLike 'tenant secret *'
    }

    It 'refuses plain http to a host that is not loopback (RemoteInsecure), without printing the key' {
        $env:REQUIEM_REMOTE_CONNECTION_STRING = "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=$script:DevKey;BlobEndpoint=http://storage.example.com/devstoreaccount1;"
        $env:REQUIEM_REMOTE_CONTAINER = 'anything'
        $err = $null
        try { Add-RequiemCasObject -LiteralPath (New-File 'insecure') -Cas (New-Store) } catch { $err = $_ }
        $err.FullyQualifiedErrorId | Should -Be 'RemoteInsecure,Requiem.PowerShell.AddRequiemCasObjectCommand'
        $err.ToString() | Should -Not -Match ([regex]::Escape($script:DevKey.Substring(0, 20)))
    }
}

Describe 'Remote store: settings' {
    BeforeEach {
        if (-not $script:Azurite) { Set-ItResult -Skipped -Because 'neither azurite-blob nor npm is available' }
    }
    AfterEach {
        Remove-Item Env:REQUIEM_CONFIG, Env:REQUIEM_TEST_STORE_SECRET, Env:REQUIEM_REMOTE_CONNECTION_STRING, Env:REQUIEM_REMOTE_CONTAINER -ErrorAction Ignore
    }

    It 'takes the remote from the config section and the secret from the variable it names; the environment variables win' {
        Remove-Item Env:REQUIEM_REMOTE_CONNECTION_STRING, Env:REQUIEM_REMOTE_CONTAINER -ErrorAction Ignore
        $fromConfig = New-Container
        $config = Join-Path $script:Dir "config-$fromConfig.json"
        Set-Content -LiteralPath $config -Value ('{"config_version":"1.1","remote":{"kind":"azure_blob","container":"' + $fromConfig + '","connection_string_env":"REQUIEM_TEST_STORE_SECRET","download_parallelism":16}}')
        $env:REQUIEM_CONFIG = $config
        $env:REQUIEM_TEST_STORE_SECRET = Get-ConnectionString $script:Port
        (Test-RequiemConfig).Valid | Should -BeTrue
        $put = Add-RequiemCasObject -LiteralPath (New-File "via config $(New-Guid)") -Cas (New-Store)
        (Get-Backend $script:Port $fromConfig).Exists("objects/$($put.Hash.Substring(0, 2))/$($put.Hash)", [Threading.CancellationToken]::None) | Should -BeTrue

        $fromEnvironment = New-Container
        $env:REQUIEM_REMOTE_CONTAINER = $fromEnvironment
        $env:REQUIEM_REMOTE_CONNECTION_STRING = Get-ConnectionString $script:Port
        $env:REQUIEM_TEST_STORE_SECRET = 'UseDevelopmentStorage=true;broken'
        $put2 = Add-RequiemCasObject -LiteralPath (New-File "via environment $(New-Guid)") -Cas (New-Store)
        (Get-Backend $script:Port $fromEnvironment).Exists("objects/$($put2.Hash.Substring(0, 2))/$($put2.Hash)", [Threading.CancellationToken]::None) | Should -BeTrue
    }

    It 'does not download an object larger than remote.max_object_bytes' {
        Remove-Item Env:REQUIEM_REMOTE_CONNECTION_STRING, Env:REQUIEM_REMOTE_CONTAINER -ErrorAction Ignore
        $container = New-Container
        $config = Join-Path $script:Dir "config-max-$container.json"
        Set-Content -LiteralPath $config -Value ('{"config_version":"1.1","remote":{"kind":"azure_blob","container":"' + $container + '","connection_string_env":"REQUIEM_TEST_STORE_SECRET","max_object_bytes":4096}}')
        $env:REQUIEM_CONFIG = $config
        $env:REQUIEM_TEST_STORE_SECRET = Get-ConnectionString $script:Port
        $big = Join-Path $script:Dir "big-$container.bin"
        [IO.File]::WriteAllBytes($big, [byte[]](1..65536 | ForEach-Object { Get-Random -Maximum 256 }))
        $put = Add-RequiemCasObject -LiteralPath $big -Cas (New-Store)
        (Get-Backend $script:Port $container).Exists("objects/$($put.Hash.Substring(0, 2))/$($put.Hash)", [Threading.CancellationToken]::None) | Should -BeTrue
        $other = New-Store
        $err = $null
        Get-RequiemCasObject -Hash $put.Hash -Cas $other -WarningVariable warn -WarningAction SilentlyContinue -ErrorVariable err -ErrorAction SilentlyContinue | Out-Null
        $err[0].FullyQualifiedErrorId | Should -Be 'CasRemoteObjectTooLarge,Requiem.PowerShell.GetRequiemCasObjectCommand'
        $err[0].TargetObject | Should -Be $put.Hash
        $err[0].Exception.Message | Should -Match 'remote\.max_object_bytes \(4096 bytes\)'
        ($warn -join "`n") | Should -Match 'more than the 4096 bytes allowed.*max_object_bytes'
        @(Get-ChildItem -LiteralPath (Join-Path $other 'objects') -Recurse -File -ErrorAction Ignore).Count | Should -Be 0
    }

    It 'a remote configured without its secret is a warning, and the local store works; Sync-RequiemCas says RemoteNotConfigured' {
        Remove-Item Env:REQUIEM_REMOTE_CONNECTION_STRING, Env:REQUIEM_REMOTE_CONTAINER, Env:REQUIEM_TEST_STORE_SECRET -ErrorAction Ignore
        $config = Join-Path $script:Dir "config-nosecret.json"
        Set-Content -LiteralPath $config -Value '{"config_version":"1.1","remote":{"kind":"azure_blob","container":"requiem","connection_string_env":"REQUIEM_TEST_STORE_SECRET"}}'
        $env:REQUIEM_CONFIG = $config
        $store = New-Store
        $put = Add-RequiemCasObject -LiteralPath (New-File 'local only') -Cas $store -WarningVariable warn -WarningAction SilentlyContinue
        $put.Hash | Should -Match '^[0-9a-f]{64}$'
        ($warn -join "`n") | Should -Match 'REQUIEM_TEST_STORE_SECRET is empty'
        $err = $null
        try { Sync-RequiemCas -Cas $store -WarningAction SilentlyContinue } catch { $err = $_ }
        $err.FullyQualifiedErrorId | Should -Be 'RemoteNotConfigured,Requiem.PowerShell.SyncRequiemCasCommand'
    }

    It 'rejects a config whose remote section is malformed, naming the field' {
        $config = Join-Path $script:Dir "config-bad.json"
        Set-Content -LiteralPath $config -Value '{"config_version":"1.1","remote":{"kind":"s3","container":"Bad_Name","connection_string_env":"DefaultEndpointsProtocol=https;AccountKey=x","download_parallelism":0}}'
        $r = Test-RequiemConfig -Path $config
        $r.Valid | Should -BeFalse
        $r.Errors.Field | Should -Contain '$.remote.kind'
        $r.Errors.Field | Should -Contain '$.remote.container'
        $r.Errors.Field | Should -Contain '$.remote.connection_string_env'
        $r.Errors.Field | Should -Contain '$.remote.download_parallelism'
    }
}

Describe 'Remote store: an outage loses nothing' {
    BeforeEach {
        if (-not $script:Azurite) { Set-ItResult -Skipped -Because 'neither azurite-blob nor npm is available' }
    }

    It 'Azurite stopped mid-work: the run goes on locally with a warning; restarted, Sync-RequiemCas uploads what was missed and a third agent reads it' {
        # A private Azurite, so stopping it does not disturb the other tests.
        $port = Get-FreePort
        $location = Join-Path $script:Dir "azurite-outage-$port"
        $private = Start-Azurite -Port $port -Location $location
        try {
            $container = New-Container
            Use-Remote $port $container
            $a = New-Store
            $first = Add-RequiemCasObject -LiteralPath (New-File "before the outage $(New-Guid)") -Cas $a

            Stop-Azurite $private
            $second = Add-RequiemCasObject -LiteralPath (New-File "during the outage $(New-Guid)") -Cas $a -WarningVariable warn -WarningAction SilentlyContinue
            $second.Hash | Should -Match '^[0-9a-f]{64}$'
            ($warn -join "`n") | Should -Match 'unreachable'
            (Get-ChildItem (Join-Path $a 'remote/pending')).Name | Should -Contain "objects+$($second.Hash.Substring(0, 2))+$($second.Hash)"
            $err = $null
            try { Sync-RequiemCas -Cas $a } catch { $err = $_ }
            $err.FullyQualifiedErrorId | Should -Be 'RemoteUnavailable,Requiem.PowerShell.SyncRequiemCasCommand'

            $private = Start-Azurite -Port $port -Location $location
            $sync = Sync-RequiemCas -Cas $a
            $sync.Uploaded | Should -BeGreaterOrEqual 1
            $sync.Pending | Should -Be 0
            $sync.Reachable | Should -BeTrue
            (Sync-RequiemCas -Cas $a).Uploaded | Should -Be 0   # nothing uploaded twice

            $c = New-Store
            Export-RequiemCasObject -Hash $second.Hash -Cas $c -Raw | Should -BeLike 'during the outage *'
            Export-RequiemCasObject -Hash $first.Hash -Cas $c -Raw | Should -BeLike 'before the outage *'
        }
        finally {
            Stop-Azurite $private
        }
    }
}

Describe 'Remote store: the action cache shared by agents' {
    BeforeAll {
        $health = Get-RequiemHealth -WarningAction SilentlyContinue
        $script:NoHermetic = -not $IsLinux -or $health.SandboxCapabilities.Enforced -notcontains 'filesystem_isolation' -or
            $health.SandboxCapabilities.Enforced -notcontains 'network_isolation'
        # Both agents check out to the same path (workspace_root is part of the request, so of the key).
        $script:Ws = Join-Path $script:Dir 'shared-ws'
        New-Item -ItemType Directory -Force $Ws | Out-Null
        Set-Content -LiteralPath (Join-Path $Ws 'in.txt') -Value 'agents share results' -NoNewline
        # Takes about 2 s when it runs; logs each run in runs.log (not declared, so not part of the key).
        $script:SlowRequest = @{
            command = '/bin/sh'; argv = @('-c', 'echo ran >> runs.log; sleep 2; tr a-z A-Z < in.txt > out.txt; echo done')
            workspace_root = $Ws; inputs = @('in.txt'); outputs = @('out.txt'); timeout_ms = 30000
            policy = @{ filesystem = 'hermetic'; deny_network = $true }
        }
        function script:Get-RunCount { @(Get-Content -LiteralPath (Join-Path $Ws 'runs.log') -ErrorAction Ignore).Count }
    }
    BeforeEach {
        if (-not $script:Azurite) { Set-ItResult -Skipped -Because 'neither azurite-blob nor npm is available' }
        elseif ($script:NoHermetic) { Set-ItResult -Skipped -Because 'hermetic file-system isolation with the network denied is not enforced here' }
    }

    It 'agent A records a 2 s hermetic run; agent B, with an empty local store, gets a hit without running anything, the output restored byte-identical' {
        Use-Remote $script:Port (New-Container)
        $a = New-Store; $b = New-Store
        $first = Invoke-RequiemExec -Request $SlowRequest -Cas $a -Cache ReadWrite -WarningAction SilentlyContinue
        $first.ExitCode | Should -Be 0
        $first.CacheHit | Should -BeFalse
        $expected = [IO.File]::ReadAllBytes((Join-Path $Ws 'out.txt'))
        Remove-Item -LiteralPath (Join-Path $Ws 'out.txt')
        $runs = Get-RunCount

        $watch = [Diagnostics.Stopwatch]::StartNew()
        $hit = Invoke-RequiemExec -Request $SlowRequest -Cas $b -Cache Read -IncludeOutput -WarningAction SilentlyContinue
        $watch.Stop()
        $hit.CacheHit | Should -BeTrue
        $hit.CacheKey | Should -Be $first.CacheKey
        $hit.ResultDigest | Should -Be $first.ResultDigest
        $hit.StdoutText | Should -Be "done`n"
        Get-RunCount | Should -Be $runs -Because 'a hit runs nothing'
        [IO.File]::ReadAllBytes((Join-Path $Ws 'out.txt')) | Should -Be $expected
        $watch.Elapsed.TotalSeconds | Should -BeLessThan 1.5 -Because 'a hit does not run the 2 s command'
        Test-Path (Join-Path $b "ac/$($first.CacheKey.Substring(0, 2))/$($first.CacheKey).json") | Should -BeTrue -Because 'the entry came down into agent B''s store'
        (Test-RequiemCas -All -Cas $b).Valid | Should -BeTrue
    }

    It 'Azurite stopped mid-work: a run goes on locally with a warning; restarted, Sync-RequiemCas uploads its cache entry and a third agent gets hits' {
        # A private Azurite, so stopping it does not disturb the other tests.
        $port = Get-FreePort
        $location = Join-Path $script:Dir "azurite-ac-outage-$port"
        $private = Start-Azurite -Port $port -Location $location
        try {
            Use-Remote $port (New-Container)
            $ws = Join-Path $script:Dir "outage-ws-$port"
            New-Item -ItemType Directory $ws | Out-Null
            function Get-Request([string] $Text) {
                Set-Content -LiteralPath (Join-Path $ws 'in.txt') -Value $Text -NoNewline
                @{
                    command = '/bin/sh'; argv = @('-c', 'echo ran >> runs.log; tr a-z A-Z < in.txt > out.txt; seq 1 20000 > big.bin; echo done')
                    workspace_root = $ws; inputs = @('in.txt'); outputs = @('out.txt', 'big.bin'); timeout_ms = 30000
                    policy = @{ filesystem = 'hermetic'; deny_network = $true }
                }
            }
            $a = New-Store
            $before = Invoke-RequiemExec -Request (Get-Request 'before the outage') -Cas $a -Cache ReadWrite -WarningAction SilentlyContinue
            $before.CacheHit | Should -BeFalse

            Stop-Azurite $private
            $during = Invoke-RequiemExec -Request (Get-Request 'during the outage') -Cas $a -Cache ReadWrite -WarningVariable warn -WarningAction SilentlyContinue
            $during.ExitCode | Should -Be 0
            $during.CacheHit | Should -BeFalse
            $during.CacheKey | Should -Not -Be $before.CacheKey
            ($warn -join "`n") | Should -Match 'unreachable'
            $pending = (Get-ChildItem (Join-Path $a 'remote/pending')).Name
            $pending | Should -Contain "ac+$($during.CacheKey.Substring(0, 2))+$($during.CacheKey).json" -Because 'the entry written offline waits for the sync'
            $out = ($during.OutputFiles | Where-Object Path -eq 'out.txt').Digest   # big.bin is the same as before the outage: already uploaded
            $pending | Should -Contain "objects+$($out.Substring(0, 2))+$out"
            $expected = [IO.File]::ReadAllBytes((Join-Path $ws 'out.txt'))
            $expectedBig = (Get-FileHash -LiteralPath (Join-Path $ws 'big.bin')).Hash

            $private = Start-Azurite -Port $port -Location $location
            $sync = Sync-RequiemCas -Cas $a
            $sync.Uploaded | Should -BeGreaterOrEqual 3
            $sync.Pending | Should -Be 0

            # A third agent, with an empty local store, gets both results without running anything.
            $c = New-Store
            $runs = @(Get-Content -LiteralPath (Join-Path $ws 'runs.log')).Count
            Remove-Item -LiteralPath (Join-Path $ws 'out.txt'), (Join-Path $ws 'big.bin')
            $hit = Invoke-RequiemExec -Request (Get-Request 'during the outage') -Cas $c -Cache Read -IncludeOutput -WarningAction SilentlyContinue
            $hit.CacheHit | Should -BeTrue
            $hit.CacheKey | Should -Be $during.CacheKey
            $hit.StdoutText | Should -Be "done`n"
            [IO.File]::ReadAllBytes((Join-Path $ws 'out.txt')) | Should -Be $expected
            (Get-FileHash -LiteralPath (Join-Path $ws 'big.bin')).Hash | Should -Be $expectedBig
            (Invoke-RequiemExec -Request (Get-Request 'before the outage') -Cas $c -Cache Read -WarningAction SilentlyContinue).CacheHit | Should -BeTrue
            @(Get-Content -LiteralPath (Join-Path $ws 'runs.log')).Count | Should -Be $runs -Because 'hits run nothing'
            (Test-RequiemCas -All -Cas $c).Valid | Should -BeTrue
        }
        finally {
            Stop-Azurite $private
        }
    }

    It 'a hit with many outputs brings them down from the container at once, each verified, all restored byte-identical' {
        Use-Remote $script:Port (New-Container)
        $ws = Join-Path $script:Dir "many-ws-$(New-Guid)"
        New-Item -ItemType Directory $ws | Out-Null
        Set-Content -LiteralPath (Join-Path $ws 'in.txt') -Value 'many outputs' -NoNewline
        $outputs = 1..40 | ForEach-Object { "o$_.txt" }
        $request = @{
            command = '/bin/sh'; argv = @('-c', 'echo ran >> runs.log; for i in $(seq 1 40); do seq $i 5000 > o$i.txt; done')
            workspace_root = $ws; inputs = @('in.txt'); outputs = $outputs; timeout_ms = 60000
            policy = @{ filesystem = 'hermetic'; deny_network = $true }
        }
        $first = Invoke-RequiemExec -Request $request -Cas (New-Store) -Cache ReadWrite -WarningAction SilentlyContinue
        $first.OutputFiles.Count | Should -Be 40
        $expected = @{}
        foreach ($o in $outputs) { $expected[$o] = (Get-FileHash -LiteralPath (Join-Path $ws $o)).Hash; Remove-Item -LiteralPath (Join-Path $ws $o) }
        $downloads = Get-RemoteCounter RemoteDownloads

        $b = New-Store
        $hit = Invoke-RequiemExec -Request $request -Cas $b -Cache Read -WarningAction SilentlyContinue
        $hit.CacheHit | Should -BeTrue
        foreach ($o in $outputs) { (Get-FileHash -LiteralPath (Join-Path $ws $o)).Hash | Should -Be $expected[$o] }
        (Get-RemoteCounter RemoteDownloads) - $downloads | Should -BeGreaterOrEqual 41 -Because 'the entry and every output came down'
        @(Get-Content -LiteralPath (Join-Path $ws 'runs.log')).Count | Should -Be 1
        (Test-RequiemCas -All -Cas $b).Valid | Should -BeTrue
    }

    It 'a tampered output blob in the container: agent B detects it, does not use it, runs the command instead and says so' {
        $container = New-Container
        Use-Remote $script:Port $container
        $a = New-Store; $b = New-Store
        $first = Invoke-RequiemExec -Request $SlowRequest -Cas $a -Cache ReadWrite -WarningAction SilentlyContinue
        $outDigest = ($first.OutputFiles | Where-Object Path -eq 'out.txt').Digest
        $backend = Get-Backend $script:Port $container
        $name = "objects/$($outDigest.Substring(0, 2))/$outDigest"
        $backend.PutDocument($name, [ReadOnlyMemory[byte]]::new([Text.Encoding]::UTF8.GetBytes('forged output')), $true, [Threading.CancellationToken]::None) | Out-Null
        Remove-Item -LiteralPath (Join-Path $Ws 'out.txt')
        $runs = Get-RunCount

        $r = Invoke-RequiemExec -Request $SlowRequest -Cas $b -Cache Read -WarningVariable warn -WarningAction SilentlyContinue -ErrorAction Stop
        $r.CacheHit | Should -BeFalse
        Get-RunCount | Should -Be ($runs + 1) -Because 'the command ran instead'
        ($warn -join "`n") | Should -Match 'not used'
        Get-Content -LiteralPath (Join-Path $Ws 'out.txt') -Raw | Should -Be "AGENTS SHARE RESULTS"
        (Test-RequiemCas -All -Cas $b).Valid | Should -BeTrue
    }
}

Describe 'Remote store: refs shared by agents' {
    BeforeEach {
        if (-not $script:Azurite) { Set-ItResult -Skipped -Because 'neither azurite-blob nor npm is available' }
    }

    It 'a ref set on agent A is read through on agent B; removed on A, it is a tombstone no agent reads back, and B''s stale copy is not uploaded again' {
        $container = New-Container
        Use-Remote $script:Port $container
        $a = New-Store; $b = New-Store
        $put = Add-RequiemCasObject -LiteralPath (New-File "ref target $(New-Guid)") -Cas $a
        Set-RequiemCasRef -Name 'builds/main' -Hash $put.Hash -Cas $a | Out-Null

        (Get-RequiemCasRef -Name 'builds/main' -Cas $b).Hash | Should -Be $put.Hash
        (Get-Content -Raw -LiteralPath (Join-Path $b 'refs/builds/main')).Trim() | Should -Be $put.Hash -Because 'the ref read through fills the local store'

        Remove-RequiemCasRef -Name 'builds/main' -Cas $a -Confirm:$false
        $backend = Get-Backend $script:Port $container
        $blob = [IO.MemoryStream]::new()
        $backend.Download('refs/builds/main', $blob, [Threading.CancellationToken]::None) | Should -BeTrue
        $blob.Length | Should -Be 0 -Because 'a removed ref is an empty blob (a tombstone)'

        $c = New-Store
        Get-RequiemCasRef -Name 'builds/main' -Cas $c -ErrorVariable err -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $err[0].FullyQualifiedErrorId | Should -Be 'RefNotFound,Requiem.PowerShell.GetRequiemCasRefCommand'
        Test-Path (Join-Path $c 'refs/builds/main') | Should -BeFalse

        # Agent B still holds the value it read before the removal: a sync does not put it back over the tombstone.
        $null = Sync-RequiemCas -Cas $b
        $blob = [IO.MemoryStream]::new()
        $backend.Download('refs/builds/main', $blob, [Threading.CancellationToken]::None) | Should -BeTrue
        $blob.Length | Should -Be 0
        # Set again on any agent: the ref is back for everyone (last writer wins).
        Set-RequiemCasRef -Name 'builds/main' -Hash $put.Hash -Cas $b | Out-Null
        (Get-RequiemCasRef -Name 'builds/main' -Cas (New-Store)).Hash | Should -Be $put.Hash
    }

    It 'a remote ref that is not a hash, or names an object no store holds, is not used (a warning), and nothing is written locally' {
        $container = New-Container
        Use-Remote $script:Port $container
        $backend = Get-Backend $script:Port $container
        $none = [Threading.CancellationToken]::None
        $backend.PutDocument('refs/forged/text', [ReadOnlyMemory[byte]]::new([Text.Encoding]::ASCII.GetBytes("not a hash`n")), $true, $none) | Out-Null
        $backend.PutDocument('refs/forged/dangling', [ReadOnlyMemory[byte]]::new([Text.Encoding]::ASCII.GetBytes(('ab' * 32) + "`n")), $true, $none) | Out-Null
        $b = New-Store
        foreach ($name in 'forged/text', 'forged/dangling') {
            Get-RequiemCasRef -Name $name -Cas $b -ErrorVariable err -ErrorAction SilentlyContinue -WarningVariable warn -WarningAction SilentlyContinue | Should -BeNullOrEmpty
            $err[0].FullyQualifiedErrorId | Should -Be 'RefNotFound,Requiem.PowerShell.GetRequiemCasRefCommand'
            ($warn -join "`n") | Should -Match 'not used'
            Test-Path (Join-Path $b "refs/$name") | Should -BeFalse
        }
    }

    It 'a ref removed while Azurite is down: the removal waits in the journal, a read-through does not bring the old value back, and the sync writes the tombstone' {
        $port = Get-FreePort
        $location = Join-Path $script:Dir "azurite-refs-$port"
        $private = Start-Azurite -Port $port -Location $location
        try {
            $container = New-Container
            Use-Remote $port $container
            $a = New-Store
            $put = Add-RequiemCasObject -LiteralPath (New-File "ref target $(New-Guid)") -Cas $a
            Set-RequiemCasRef -Name 'releases/v1' -Hash $put.Hash -Cas $a | Out-Null

            Stop-Azurite $private
            Remove-RequiemCasRef -Name 'releases/v1' -Cas $a -Confirm:$false -WarningVariable warn -WarningAction SilentlyContinue
            ($warn -join "`n") | Should -Match 'unreachable'
            (Get-ChildItem (Join-Path $a 'remote/pending')).Name | Should -Contain 'refs+releases+v1'

            $private = Start-Azurite -Port $port -Location $location
            # The remote still holds the old value (written again here: a killed Azurite may lose its last writes), and
            # agent A's read must not bring it back, since its removal is pending.
            $none = [Threading.CancellationToken]::None
            (Get-Backend $port $container).PutDocument('refs/releases/v1', [ReadOnlyMemory[byte]]::new([Text.Encoding]::ASCII.GetBytes($put.Hash + "`n")), $true, $none) | Out-Null
            (Get-Backend $port $container).PutDocument("objects/$($put.Hash.Substring(0, 2))/$($put.Hash)", [ReadOnlyMemory[byte]]::new([IO.File]::ReadAllBytes((Join-Path $a "objects/$($put.Hash.Substring(0, 2))/$($put.Hash)"))), $true, $none) | Out-Null
            (Get-RequiemCasRef -Name 'releases/v1' -Cas (New-Store)).Hash | Should -Be $put.Hash -Because 'another agent still reads the old value until the sync'
            Get-RequiemCasRef -Name 'releases/v1' -Cas $a -ErrorVariable err -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
            $err[0].FullyQualifiedErrorId | Should -Be 'RefNotFound,Requiem.PowerShell.GetRequiemCasRefCommand'
            Test-Path (Join-Path $a 'refs/releases/v1') | Should -BeFalse

            (Sync-RequiemCas -Cas $a).Pending | Should -Be 0
            $blob = [IO.MemoryStream]::new()
            (Get-Backend $port $container).Download('refs/releases/v1', $blob, $none) | Should -BeTrue
            $blob.Length | Should -Be 0 -Because 'the removal reached the remote as a tombstone'
            Get-RequiemCasRef -Name 'releases/v1' -Cas (New-Store) -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        }
        finally {
            Stop-Azurite $private
        }
    }
}
