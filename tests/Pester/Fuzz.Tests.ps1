# Fuzzing (issue 11): thousands of mutated execution requests and bench reports in one pwsh process, against the
# built module. Every failure must be an ErrorRecord carrying a Requiem error id (never a raw .NET exception), no call
# may hang, and a rejected request must run nothing (its command would leave a file in the workspace).
# The random seed is fixed and printed; set REQUIEM_FUZZ_SEED to replay or explore another sequence.
BeforeAll {
    . (Join-Path $PSScriptRoot 'TestSetup.ps1')
    $script:Dir = New-TestDirectory
    $script:Ws = Join-Path $Dir 'ws'
    New-Item -ItemType Directory -Path $Ws | Out-Null
    $script:SavedCas = $env:REQUIEM_CAS
    # The store on tmpfs where there is one: valid mutants really run and are recorded, and a run's durable commit
    # costs 20 ms there instead of 60 ms on this disk, which keeps 3,000 requests within a minute or so.
    $script:CasDir = if (Test-Path /dev/shm -PathType Container) { "/dev/shm/requiem-fuzz-$([guid]::NewGuid().ToString('n'))" } else { Join-Path $Dir 'cas' }
    $env:REQUIEM_CAS = $CasDir
    $script:Seed = if ($env:REQUIEM_FUZZ_SEED) { [int]$env:REQUIEM_FUZZ_SEED } else { 20261201 }
    Write-Host "Fuzz seed: $Seed (set REQUIEM_FUZZ_SEED to change it)"

    # The fuzz loop runs in another runspace of this process, so that the test can notice a call that hangs.
    $script:FuzzScript = {
        param([string] $ModulePath, [string] $Ws, [string] $Dir, [int] $Seed, [int] $RequestCount, [int] $BenchCount,
              [string] $BaseBench, [hashtable] $State)
        $ErrorActionPreference = 'Stop'
        Import-Module $ModulePath
        $rng = [Random]::new($Seed)
        function Pick([object[]] $Items) { , $Items[$rng.Next($Items.Count)] }   # the comma keeps an array item whole

        # ---- generic mutators over JSON text and over parsed documents ----
        $hugeNumbers = @('1e400', '-1e400', '99999999999999999999999', '-9223372036854775809', '9223372036854775808',
            '4194305', '4194304', '0', '-0', '-1', '1.5', '1E2', '2147483648', '1099511627777', '0.0000001', '1e-400')
        $unicodeStrings = @('"\ud800"', '"\udfff"', '"a\ud800b"', '"\udc00\ud800"', '"\u0000"', '"x\u0000y"', '"\ufffe"',
            '"\u202e"', '"e\u0301"', '"\ud83d\ude00"', '"\u2028"', '""', '" "', '".."', '"../x"', '"/etc"', '"a\\\\b"',
            '"\n"', ('"' + ('a/' * 2100) + '"'), ('"' + ('\u00e9' * 3000) + '"'))
        $otherValues = @('null', 'true', 'false', '0', '-1', '1.5', '"s"', '[]', '{}', '[1,"a",null]', '{"a":{}}', '""')

        function Get-Paths($node, [object[]] $prefix) {
            # Every member and element of a parsed document, as key paths (run once per base document).
            if ($node -is [System.Text.Json.Nodes.JsonObject]) {
                foreach ($kv in $node) { , ($prefix + @($kv.Key)); Get-Paths $kv.Value ($prefix + @($kv.Key)) }
            }
            elseif ($node -is [System.Text.Json.Nodes.JsonArray]) {
                for ($i = 0; $i -lt $node.Count; $i++) { , ($prefix + @($i)); Get-Paths $node[$i] ($prefix + @($i)) }
            }
        }

        function Get-Container($doc, [object[]] $path) {
            $node = $doc
            for ($k = 0; $k -lt $path.Count - 1; $k++) {
                if ($path[$k] -is [string]) { $node = $node.AsObject()[[string]$path[$k]] } else { $node = $node.AsArray()[[int]$path[$k]] }
            }
            return , $node   # a JsonObject is enumerable: keep PowerShell from unrolling it
        }

        function New-Base([string] $json) {
            $node = [System.Text.Json.Nodes.JsonNode]::Parse($json)
            $paths = @(Get-Paths $node @())
            return @{ Json = $json; Node = $node; Paths = $paths; ObjectPaths = @($paths | Where-Object { $_[-1] -is [string] }) }
        }

        function New-Mutant($base, [int] $index) {
            # Returns @{ Kind; Input } where Input is JSON text, a file path (raw bytes), or a hashtable.
            $json = $base.Json
            $kind = Pick @('flip', 'flip', 'truncate', 'swap', 'swap', 'huge', 'huge', 'nest', 'unicode', 'unicode', 'dupkey', 'missing', 'unknown', 'junk', 'valid')
            switch ($kind) {
                'flip' {
                    $bytes = [Text.Encoding]::UTF8.GetBytes($json)
                    for ($n = 1 + $rng.Next(3); $n -gt 0; $n--) { $bytes[$rng.Next($bytes.Length)] = $bytes[$rng.Next($bytes.Length)] -bxor (1 + $rng.Next(255)) }
                    $file = Join-Path $Dir "mutant-$index.json"
                    [IO.File]::WriteAllBytes($file, $bytes)
                    return @{ Kind = $kind; Input = $file; Cleanup = $file }
                }
                'truncate' { return @{ Kind = $kind; Input = $json.Substring(0, $rng.Next(1, $json.Length)) } }
                'junk' {
                    $text = Pick @(' ', 'null', '[]', '"x"', '{', '}', '{}', '[{}]', '{"command":', ('[' * 10000), ('{"a":' * 3000 + '1' + '}' * 3000), '{"command":"/bin/sh"}{}')
                    return @{ Kind = $kind; Input = $text }
                }
                'valid' { return @{ Kind = $kind; Input = $json } }
                'dupkey' {
                    $dup = Pick @('"command":"/bin/true",', '"workspace_root":"/",', '"argv":[],', '"policy":{},', '"timeout_ms":1,', '"bench_report_version":"1",', '"cases":[],')
                    $at = if ($rng.Next(2) -and $json.Contains('"policy":{')) { $json.IndexOf('"policy":{') + 10; $dup = '"mode":"strict",' } else { 1 }
                    return @{ Kind = $kind; Input = $json.Insert($at, $dup) }
                }
            }
            $doc = $base.Node.DeepClone()
            $placeholder = "__MUTANT_$($index)__"
            $path = if ($kind -in 'missing', 'unknown') { Pick $base.ObjectPaths } else { Pick $base.Paths }
            $container = Get-Container $doc $path
            $key = $path[-1]
            switch ($kind) {
                'missing' { $null = $container.AsObject().Remove([string]$key); return @{ Kind = $kind; Input = $doc.ToJsonString() } }
                'unknown' { $container.AsObject()['zz_unknown'] = [System.Text.Json.Nodes.JsonValue]::Create(1); return @{ Kind = $kind; Input = $doc.ToJsonString() } }
                'swap' { $value = Pick $otherValues }
                'huge' { $value = Pick $hugeNumbers }
                'nest' { $d = Pick @(20, 65, 200, 5000); $value = if ($rng.Next(2)) { ('[' * $d) + (']' * $d) } else { ('{"a":' * $d) + '1' + ('}' * $d) } }
                'unicode' {
                    $value = Pick $unicodeStrings
                    if ($rng.Next(4) -eq 0 -and $container -is [System.Text.Json.Nodes.JsonObject]) {
                        # As a member name instead of a value.
                        $container.AsObject()[$placeholder] = [System.Text.Json.Nodes.JsonValue]::Create(1)
                        return @{ Kind = $kind; Input = $doc.ToJsonString().Replace('"' + $placeholder + '"', $value) }
                    }
                }
            }
            $placeholderNode = [System.Text.Json.Nodes.JsonValue]::Create($placeholder)
            if ($key -is [string]) { $container.AsObject()[[string]$key] = $placeholderNode } else { $container.AsArray()[[int]$key] = $placeholderNode }
            return @{ Kind = $kind; Input = $doc.ToJsonString().Replace('"' + $placeholder + '"', $value) }
        }

        function New-HashtableMutant([int] $index) {
            # PowerShell-side inputs that have no JSON text: values of odd .NET types, lone surrogates in .NET strings.
            $h = [ordered]@{ command = '/bin/sh'; argv = @('-c', 'touch m'); workspace_root = $Ws; policy = @{ max_processes = 8 } }
            $key = Pick @('command', 'argv', 'cwd', 'env', 'stdin', 'outputs', 'policy', 'timeout_ms')
            $h[$key] = Pick @([string][char]0xD800, ('a' + [char]0xDC00), [version]'1.2', [datetime]::UnixEpoch, @{ x = [char]0xD800 },
                @([char]0xD800), [long]::MaxValue, [double]::NaN, [double]::PositiveInfinity, [decimal]::MaxValue, @($null), @{}, 1.5,
                [byte[]](1, 2), [Numerics.BigInteger]::Pow(10, 30))
            return @{ Kind = 'hashtable'; Input = $h }
        }

        function Test-Record($rec, [string] $cmdlet) {
            # A typed failure: a RequiemException with an id that is a name, not a .NET type.
            $id = $rec.FullyQualifiedErrorId
            $type = $rec.Exception.GetType().FullName
            $ok = $type -eq 'Requiem.Engine.RequiemException' -and $id -match "^[A-Z][A-Za-z0-9]+,Requiem\.PowerShell\.$cmdlet$"
            return @{ Ok = $ok; Id = ($id -split ',')[0]; Type = $type; Message = $rec.Exception.Message }
        }

        $results = @{ Requests = 0; Ran = 0; Rejected = 0; Bench = 0; BenchCalls = 0; BenchValid = 0
            Unhandled = [Collections.Generic.List[string]]::new(); RanWhenRejected = [Collections.Generic.List[string]]::new()
            Ids = @{}; Kinds = @{}; Ms = @{} }
        $clock = [Diagnostics.Stopwatch]::new()

        # ---- execution requests ----
        $baseRequest = [ordered]@{ command = '/bin/sh'; argv = @('-c', 'touch m'); workspace_root = $Ws; cwd = '.'; env = [ordered]@{ A = '1' }
            stdin = $null; inputs = @(); outputs = @('m'); timeout_ms = 5000; max_output_bytes = 4096
            policy = [ordered]@{ mode = 'permissive'; scheduler_mode = 'turbo'; deterministic = $true; deny_network = $false; max_processes = 8
                max_open_files = 64; max_cpu_seconds = 5; max_output_file_bytes = 1024; env_allowlist = @(); env_denylist = @(); stochastic = $false } }
        $baseRequestDoc = New-Base (ConvertTo-Json $baseRequest -Depth 10 -Compress)
        $baseBenchDoc = New-Base $BaseBench
        for ($i = 0; $i -lt $RequestCount; $i++) {
            $m = if ($rng.Next(10) -eq 0) { New-HashtableMutant $i } else { New-Mutant $baseRequestDoc $i }
            $results.Kinds[$m.Kind] = 1 + [int]$results.Kinds[$m.Kind]
            $State.Current = "request $i ($($m.Kind)): " + $(if ($m.Input -is [string]) { $m.Input.Substring(0, [Math]::Min(300, $m.Input.Length)) } else { $m.Input | Out-String })
            $State.Started = [DateTime]::UtcNow.Ticks
            $failed = $null
            $clock.Restart()
            try {
                $null = Invoke-RequiemExec -Request $m.Input -ErrorAction Stop -WarningAction SilentlyContinue
                $results.Ran++
            }
            catch {
                $failed = Test-Record $_ 'InvokeRequiemExecCommand'
            }
            $State.Started = 0
            $results.Ms["exec-$($m.Kind)"] = $clock.ElapsedMilliseconds + [long]$results.Ms["exec-$($m.Kind)"]
            $results.Requests++
            if ($failed) {
                $results.Rejected++
                $results.Ids[$failed.Id] = 1 + [int]$results.Ids[$failed.Id]
                if ($env:REQUIEM_FUZZ_DEBUG) { [Console]::Error.WriteLine("$($m.Kind) -> $($failed.Id): $($failed.Message.Substring(0, [Math]::Min(150, $failed.Message.Length)))") }
                if (-not $failed.Ok) { $results.Unhandled.Add("$($State.Current)`n  -> $($failed.Type): $($failed.Message)") }
                if ([IO.Directory]::EnumerateFileSystemEntries($Ws).GetEnumerator().MoveNext()) { $results.RanWhenRejected.Add("$($State.Current)`n  -> $($failed.Id)") }
            }
            if ([IO.Directory]::EnumerateFileSystemEntries($Ws).GetEnumerator().MoveNext()) {
                [IO.Directory]::Delete($Ws, $true)
                $null = [IO.Directory]::CreateDirectory($Ws)
            }
            if ($i % 4 -eq 0) {
                # Every fourth input also through Test-RequiemPolicy, which parses and plans but never runs.
                $State.Started = [DateTime]::UtcNow.Ticks
                $clock.Restart()
                try { $null = Test-RequiemPolicy -Request $m.Input -ErrorAction Stop -WarningAction SilentlyContinue }
                catch {
                    $policyFailed = Test-Record $_ 'TestRequiemPolicyCommand'
                    if (-not $policyFailed.Ok) { $results.Unhandled.Add("Test-RequiemPolicy $($State.Current)`n  -> $($policyFailed.Type): $($policyFailed.Message)") }
                }
                $State.Started = 0
                $results.Ms['policy'] = $clock.ElapsedMilliseconds + [long]$results.Ms['policy']
                if ([IO.Directory]::EnumerateFileSystemEntries($Ws).GetEnumerator().MoveNext()) { $results.RanWhenRejected.Add("Test-RequiemPolicy ran $($State.Current)") }
            }
            if ($m.Cleanup) { Remove-Item -LiteralPath $m.Cleanup -Force }
        }

        # ---- bench reports ----
        for ($i = 0; $i -lt $BenchCount; $i++) {
            $m = New-Mutant $baseBenchDoc ($RequestCount + $i)
            $results.Bench++
            foreach ($call in 'compare-current', 'compare-baseline', 'drift') {
                $State.Current = "bench $i ($($m.Kind), $call): " + $m.Input.Substring(0, [Math]::Min(300, $m.Input.Length))
                $State.Started = [DateTime]::UtcNow.Ticks
                $failed = $null
                $clock.Restart()
                try {
                    switch ($call) {
                        'compare-current' { $null = Compare-RequiemBench -Baseline $BaseBench -Current $m.Input -ErrorAction Stop -WarningAction SilentlyContinue; $cmdlet = 'CompareRequiemBenchCommand' }
                        'compare-baseline' { $null = Compare-RequiemBench -Baseline $m.Input -Current $BaseBench -ErrorAction Stop -WarningAction SilentlyContinue; $cmdlet = 'CompareRequiemBenchCommand' }
                        'drift' { $null = Measure-RequiemDrift -Bench $m.Input -ErrorAction Stop -WarningAction SilentlyContinue; $cmdlet = 'MeasureRequiemDriftCommand' }
                    }
                    $results.BenchValid++
                }
                catch {
                    $cmdlet = if ($call -eq 'drift') { 'MeasureRequiemDriftCommand' } else { 'CompareRequiemBenchCommand' }
                    $failed = Test-Record $_ $cmdlet
                }
                $State.Started = 0
                $results.Ms["bench-$call"] = $clock.ElapsedMilliseconds + [long]$results.Ms["bench-$call"]
                $results.BenchCalls++
                if ($failed) {
                    $results.Ids[$failed.Id] = 1 + [int]$results.Ids[$failed.Id]
                    if (-not $failed.Ok) { $results.Unhandled.Add("$($State.Current)`n  -> $($failed.Type): $($failed.Message)") }
                }
            }
            if ($m.Cleanup) { Remove-Item -LiteralPath $m.Cleanup -Force }
        }
        return $results
    }
}

AfterAll {
    $env:REQUIEM_CAS = $SavedCas
    Remove-Item -Recurse -Force $script:Dir, $script:CasDir -ErrorAction Ignore
}

Describe 'Fuzzing requests and bench reports' -Skip:(-not $IsLinux) {
    BeforeAll {
        # REQUIEM_FUZZ_REQUESTS / REQUIEM_FUZZ_BENCH explore more (or fewer, while debugging); CI uses the defaults.
        $script:RequestCount = if ($env:REQUIEM_FUZZ_REQUESTS) { [int]$env:REQUIEM_FUZZ_REQUESTS } else { 3000 }
        $script:BenchCount = if ($env:REQUIEM_FUZZ_BENCH) { [int]$env:REQUIEM_FUZZ_BENCH } else { 500 }
        $report = Invoke-RequiemBench -Command 'true' -Runs 3 -Warmup 0 -NoCalibration -WarningAction SilentlyContinue
        $script:BaseBench = $report.ToJson($false)
        $script:State = [hashtable]::Synchronized(@{ Current = ''; Started = 0 })
        $ps = [powershell]::Create()
        $null = $ps.AddScript($FuzzScript).AddParameters(@{
            ModulePath = $ModulePath; Ws = $Ws; Dir = $Dir; Seed = $Seed; RequestCount = $RequestCount; BenchCount = $BenchCount
            BaseBench = $BaseBench; State = $State })
        $handle = $ps.BeginInvoke()
        $sw = [Diagnostics.Stopwatch]::StartNew()
        $script:Hung = $null
        while (-not $handle.IsCompleted) {
            Start-Sleep -Milliseconds 200
            $started = $State.Started
            if ($started -ne 0 -and ([DateTime]::UtcNow.Ticks - $started) -gt [TimeSpan]::FromSeconds(20).Ticks) { $script:Hung = $State.Current; break }
            if ($sw.Elapsed.TotalSeconds -gt 300) { $script:Hung = "the whole fuzz run exceeded 300 s; last: $($State.Current)"; break }
        }
        $script:Elapsed = $sw.Elapsed
        if ($Hung) {
            $null = $ps.BeginStop($null, $null)
            $script:Results = $null
        }
        else {
            $script:Results = $ps.EndInvoke($handle)[-1]
            $script:Errors = @($ps.Streams.Error)
            $ps.Dispose()
        }
        Write-Host ("Fuzz: {0} requests ({1} ran, {2} rejected), {3} bench reports ({4} calls, {5} accepted) in {6:0.0} s; seed {7}" -f `
            $Results.Requests, $Results.Ran, $Results.Rejected, $Results.Bench, $Results.BenchCalls, $Results.BenchValid, $Elapsed.TotalSeconds, $Seed)
        if ($Results) { Write-Host ('Milliseconds in calls: ' + (($Results.Ms.GetEnumerator() | Sort-Object Name | ForEach-Object { "$($_.Name)=$($_.Value)" }) -join ', ')) }
        if ($Results) { Write-Host ('Error ids: ' + (($Results.Ids.GetEnumerator() | Sort-Object Name | ForEach-Object { "$($_.Name)=$($_.Value)" }) -join ', ')) }
    }

    It 'never hangs (each call bounded to 20 s)' {
        $Hung | Should -BeNullOrEmpty
        $Errors | Should -BeNullOrEmpty
    }

    It 'ran at least 3,000 mutated requests and 500 mutated bench reports, valid ones among them' {
        $Results.Requests | Should -BeGreaterOrEqual $RequestCount
        $Results.Bench | Should -BeGreaterOrEqual $BenchCount
        $RequestCount | Should -BeGreaterOrEqual 3000 -Because 'CI runs the full count (REQUIEM_FUZZ_REQUESTS is for exploring)'
        $BenchCount | Should -BeGreaterOrEqual 500
        # The mutants are not all trivially refused: some run, many distinct typed errors come back.
        $Results.Ran | Should -BeGreaterThan 100
        $Results.Rejected | Should -BeGreaterThan 1000
        $Results.BenchValid | Should -BeGreaterThan 20
        $Results.Ids.Count | Should -BeGreaterThan 10
    }

    It 'reports every failure as a typed Requiem error (no raw .NET exception)' {
        $Results.Unhandled.Count | Should -Be 0 -Because ($Results.Unhandled | Select-Object -First 5 | Out-String)
    }

    It 'runs nothing for a rejected request' {
        $Results.RanWhenRejected.Count | Should -Be 0 -Because ($Results.RanWhenRejected | Select-Object -First 5 | Out-String)
    }
}

Describe 'Malformed bench reports and bench outputs (named cases)' -Skip:(-not $IsLinux) {
    BeforeAll {
        $script:Report = Invoke-RequiemBench -Command 'true' -Runs 3 -Warmup 0 -NoCalibration -WarningAction SilentlyContinue
        $script:Good = $Report.ToJson($false)
    }

    It 'refuses a report whose <Case> with <Id> (Compare-RequiemBench, Measure-RequiemDrift)' -ForEach @(
        @{ Case = 'runs hold null'; Path = 'cases[0].runs[0]'; Id = 'InvalidBenchReport' }
        @{ Case = 'cases hold null'; Path = 'cases[0]'; Id = 'InvalidBenchReport' }
        @{ Case = 'statistics are null'; Path = 'cases[0].statistics'; Id = 'InvalidBenchReport' }
        @{ Case = 'output_files are null'; Path = 'cases[0].runs[1].output_files'; Id = 'InvalidBenchReport' }
        # The reader itself refuses null for these (System.Text.Json: a required non-nullable member).
        @{ Case = 'machine is null'; Path = 'machine'; Id = 'InvalidJson' }
        @{ Case = 'tool is null'; Path = 'tool'; Id = 'InvalidJson' }
    ) {
        $doc = [System.Text.Json.Nodes.JsonNode]::Parse($Good)
        $node = $doc
        $parts = [regex]::Matches($Path, '[a-z_]+|\[\d+\]') | ForEach-Object Value
        for ($i = 0; $i -lt $parts.Count - 1; $i++) {
            if ($parts[$i] -like '`[*') { $node = $node.AsArray()[[int]$parts[$i].Trim('[]')] } else { $node = $node.AsObject()[[string]$parts[$i]] }
        }
        $last = $parts[-1]
        if ($last -like '`[*') { $node.AsArray()[[int]$last.Trim('[]')] = $null } else { $node.AsObject()[[string]$last] = $null }
        $bad = $doc.ToJsonString()
        { Compare-RequiemBench -Baseline $Good -Current $bad -ErrorAction Stop } | Should -Throw -ErrorId "$Id,Requiem.PowerShell.CompareRequiemBenchCommand"
        { Compare-RequiemBench -Baseline $bad -Current $Good -ErrorAction Stop } | Should -Throw -ErrorId "$Id,Requiem.PowerShell.CompareRequiemBenchCommand"
        { Measure-RequiemDrift -Bench $bad -ErrorAction Stop } | Should -Throw -ErrorId "$Id,Requiem.PowerShell.MeasureRequiemDriftCommand"
    }

    It 'stops a bench whose declared output is a FIFO with BenchOutputNotCaptured instead of hanging' {
        $d = Join-Path $Dir 'bench-fifo'
        New-Item -ItemType Directory -Force -Path $d | Out-Null
        $spec = @{ runs = 1; warmup = 0; cases = @(@{ name = 'fifo'; command_line = 'rm -f p; mkfifo p'; cwd = $d; output_files = @('p') }) }
        $ps = [powershell]::Create()
        $null = $ps.AddScript({ param($m, $s) Import-Module $m; try { Invoke-RequiemBench -Spec $s -ErrorAction Stop } catch { $_ } }).AddArgument($ModulePath).AddArgument($spec)
        $handle = $ps.BeginInvoke()
        $handle.AsyncWaitHandle.WaitOne([TimeSpan]::FromSeconds(60)) | Should -BeTrue -Because 'the bench must not block on the FIFO'
        $out = $ps.EndInvoke($handle)[-1]
        $out.FullyQualifiedErrorId | Should -Be 'BenchOutputNotCaptured,Requiem.PowerShell.InvokeRequiemBenchCommand'
        $out.Exception.Message | Should -Match 'not_regular_file'
    }
}
