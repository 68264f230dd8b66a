# The `requiem` command as scripts written for the Requiem CLI call it: out/Requiem/bin/requiem with the CLI's
# commands and flags, JSON on stdout, exit 0 (success) / 2 (a finding) / 1 (usage or error, message on stderr).
# Also: every -FailOn* gate run as a CI step runs it (`pwsh -File gate.ps1`) exits non-zero on a finding.
BeforeDiscovery {
    $script:OnWindows = $IsWindows
}

BeforeAll {
    . (Join-Path $PSScriptRoot 'TestSetup.ps1')
    . (Join-Path $PSScriptRoot 'ProofFixture.ps1')
    $script:Dir = New-TestDirectory
    $script:Bin = Join-Path (Split-Path $ModulePath) 'bin'
    $script:Requiem = Join-Path $Bin 'requiem'
    $script:Cas = Join-Path $Dir 'cas'
    $script:Ws = Join-Path $Dir 'ws'
    New-Item -ItemType Directory -Path $Ws | Out-Null

    # Runs the launcher the way a shell script does, with exact stdout and stderr; $Environment values of $null unset.
    function script:Invoke-Requiem {
        param([string[]] $Arguments, [hashtable] $Environment = @{}, [string] $Launcher = $script:Requiem)
        $psi = [Diagnostics.ProcessStartInfo]::new($Launcher)
        foreach ($a in $Arguments) { $psi.ArgumentList.Add($a) }
        $psi.RedirectStandardOutput = $true; $psi.RedirectStandardError = $true; $psi.UseShellExecute = $false
        $psi.WorkingDirectory = $script:Dir
        $psi.Environment['REQUIEM_PWSH'] = $script:Pwsh
        $psi.Environment['NO_COLOR'] = '1'
        foreach ($k in $Environment.Keys) {
            if ($null -eq $Environment[$k]) { [void]$psi.Environment.Remove($k) } else { $psi.Environment[$k] = $Environment[$k] }
        }
        $p = [Diagnostics.Process]::Start($psi)
        $stderrTask = $p.StandardError.ReadToEndAsync()
        $stdout = $p.StandardOutput.ReadToEnd()
        $p.WaitForExit()
        $stderr = $stderrTask.GetAwaiter().GetResult()
        $json = $null
        if ($stdout.Trim().StartsWith('{') -or $stdout.Trim().StartsWith('[')) { try { $json = $stdout | ConvertFrom-Json -Depth 64 } catch { $json = $null } }
        [pscustomobject]@{ ExitCode = $p.ExitCode; Stdout = $stdout; Stderr = $stderr; Json = $json }
    }

    function script:New-Request([string] $Name, [string] $Command, [string[]] $Argv, [hashtable] $Extra = @{}) {
        $r = @{ command = $Command; argv = $Argv; workspace_root = $Ws } + $Extra
        $path = Join-Path $Dir "$Name.request.json"
        $r | ConvertTo-Json -Depth 5 | Set-Content -LiteralPath $path
        $path
    }

    # One execution recorded through the CLI, shared by replay, digest and proof tests.
    Set-Content -LiteralPath (Join-Path $Ws 'in.txt') -Value 'recorded input'
    $script:CatRequest = New-Request 'cat' '/bin/cat' @('in.txt')
    $script:CatResult = Join-Path $Dir 'cat.result.json'
    $script:CatRun = Invoke-Requiem @('exec', 'run', '--request', $CatRequest, '--out', $CatResult, '--cas', $Cas)

    # A bench regression measured once: the same spec, 10 ms then 80 ms per run.
    $script:BenchDir = Join-Path $Dir 'bench'
    New-Item -ItemType Directory -Path $BenchDir | Out-Null
    $script:BenchSpec = Join-Path $BenchDir 'spec.json'
    @{ name = 'cli'; warmup = 1; runs = 8; cases = @(@{ name = 'work'; command = 'sh'; argv = @('./work.sh'); cwd = $BenchDir }) } |
        ConvertTo-Json -Depth 5 | Set-Content -LiteralPath $BenchSpec
    Set-Content -LiteralPath (Join-Path $BenchDir 'work.sh') -Value 'sleep 0.01'
    $script:Baseline = Join-Path $BenchDir 'baseline.json'
    $script:BaselineRun = Invoke-Requiem @('bench', 'run', '--spec', $BenchSpec, '--out', $Baseline)
    Set-Content -LiteralPath (Join-Path $BenchDir 'work.sh') -Value 'sleep 0.08'
    $script:Slower = Join-Path $BenchDir 'slower.json'
    Invoke-RequiemBench -Spec $BenchSpec -OutFile $Slower -WarningAction SilentlyContinue | Out-Null

    function script:New-CorruptStore {
        $root = Join-Path $Dir ('corrupt-' + [guid]::NewGuid().ToString('n'))
        $objects = 1..3 | ForEach-Object { Add-RequiemCasObject -Cas $root -InputObject "object $_ $('x' * 100)" -Compress None }
        $bytes = [IO.File]::ReadAllBytes($objects[1].ObjectPath)
        $bytes[5] = $bytes[5] -bxor 0x20
        [IO.File]::WriteAllBytes($objects[1].ObjectPath, $bytes)
        [pscustomobject]@{ Root = $root; Hash = $objects[1].Hash }
    }
}

AfterAll { Remove-Item -Recurse -Force $script:Dir -ErrorAction Ignore }

Describe 'The requiem launcher' {
    It 'ships bin/requiem (executable), bin/requiem.cmd and bin/requiem-cli.ps1 in the built module' {
        foreach ($f in 'requiem', 'requiem.cmd', 'requiem-cli.ps1') { Join-Path $Bin $f | Should -Exist }
        if (-not $IsWindows) { (Get-Item $Requiem).UnixFileMode.ToString() | Should -Match 'UserExecute' }
        Get-Content (Join-Path $Bin 'requiem.cmd') -Raw | Should -Match 'requiem-cli\.ps1'
    }

    It '--help prints the usage on stdout and exits 0; no command is a usage error (exit 1, stderr)' {
        $help = Invoke-Requiem @('--help')
        $help.ExitCode | Should -Be 0
        $help.Stdout | Should -Match 'usage: requiem'
        $help.Stdout | Should -Match 'validate-replacement'
        $none = Invoke-Requiem @()
        $none.ExitCode | Should -Be 1
        $none.Stdout | Should -BeNullOrEmpty
        $none.Stderr | Should -Match 'no command given'
    }

    It 'finds pwsh on PATH when REQUIEM_PWSH is not set, and says so (exit 1) when there is none' -Skip:$OnWindows {
        $pathDir = Join-Path $Dir 'pathbin'
        New-Item -ItemType Directory -Force -Path $pathDir | Out-Null
        New-Item -ItemType SymbolicLink -Path (Join-Path $pathDir 'pwsh') -Target $Pwsh -Force | Out-Null
        $found = Invoke-Requiem @('digest', 'file', '--file', (Join-Path $Ws 'in.txt')) -Environment @{ REQUIEM_PWSH = $null; PATH = "$pathDir`:/usr/bin:/bin" }
        $found.ExitCode | Should -Be 0 -Because $found.Stderr
        $found.Json.hash | Should -Be (Get-RequiemDigest -LiteralPath (Join-Path $Ws 'in.txt')).Hash
        $missing = Invoke-Requiem @('health') -Environment @{ REQUIEM_PWSH = $null; PATH = '/usr/bin:/bin' }
        $missing.ExitCode | Should -Be 1
        $missing.Stderr | Should -Match 'pwsh.*not found'
        $bad = Invoke-Requiem @('health') -Environment @{ REQUIEM_PWSH = (Join-Path $Dir 'no-such-pwsh') }
        $bad.ExitCode | Should -Be 1
        $bad.Stderr | Should -Match 'REQUIEM_PWSH'
    }

    It 'passes every argument through literally: <Name>' -Skip:$OnWindows -ForEach @(
        @{ Name = 'spaces and quotes'; File = "a b 'c' `"d`".txt" }
        @{ Name = 'a command substitution'; File = '$(touch PWNED).txt' }
        @{ Name = 'a leading dash'; File = '-leading.txt' }
        @{ Name = 'PowerShell''s stop-parsing token'; File = '--%' }
        @{ Name = 'a PowerShell -name:value'; File = '-File:x' }
        @{ Name = 'a backtick'; File = '`n.txt' }
    ) {
        $odd = Join-Path $Dir 'odd-names'
        New-Item -ItemType Directory -Force -Path $odd | Out-Null
        $path = Join-Path $odd $File
        [IO.File]::WriteAllText($path, $Name)
        # Relative, so the name reaches the launcher exactly as typed (a leading dash included).
        $psi = [Diagnostics.ProcessStartInfo]::new($Requiem)
        foreach ($a in 'digest', 'file', '--file', $File) { $psi.ArgumentList.Add($a) }
        $psi.RedirectStandardOutput = $true; $psi.RedirectStandardError = $true; $psi.UseShellExecute = $false
        $psi.WorkingDirectory = $odd
        $psi.Environment['REQUIEM_PWSH'] = $Pwsh
        $p = [Diagnostics.Process]::Start($psi)
        $err = $p.StandardError.ReadToEndAsync()
        $out = $p.StandardOutput.ReadToEnd()
        $p.WaitForExit()
        $p.ExitCode | Should -Be 0 -Because $err.GetAwaiter().GetResult()
        ($out | ConvertFrom-Json).hash | Should -Be (Get-RequiemDigest -LiteralPath $path).Hash
        Join-Path $odd 'PWNED' | Should -Not -Exist
    }

    It 'works through a symbolic link on PATH (how it is installed)' -Skip:$OnWindows {
        $linkDir = Join-Path $Dir 'linkbin'
        New-Item -ItemType Directory -Force -Path $linkDir | Out-Null
        $link = Join-Path $linkDir 'requiem'
        New-Item -ItemType SymbolicLink -Path $link -Target $Requiem -Force | Out-Null
        $r = Invoke-Requiem @('health') -Launcher $link
        $r.ExitCode | Should -Be 0 -Because $r.Stderr
        $r.Json.hash_primitive | Should -Be 'blake3'
    }
}

Describe 'requiem <command> on a good input: exit 0, the contract''s JSON on stdout' {
    It 'exec run --request --out: the result document on stdout and in --out, the same as Invoke-RequiemExec''s' {
        $CatRun.ExitCode | Should -Be 0 -Because $CatRun.Stderr
        $fromFile = Get-Content -LiteralPath $CatResult -Raw | ConvertFrom-Json
        $CatRun.Json.result_digest | Should -Be $fromFile.result_digest
        $CatRun.Json.contract_version | Should -Be '1.1'
        $CatRun.Json.exit_code | Should -Be 0
        $CatRun.Json.stdout_digest | Should -Be (Get-RequiemDigest -InputObject ([Text.Encoding]::UTF8.GetBytes("recorded input`n")) -Domain Cas).Hash
        ($CatRun.Stdout.TrimEnd("`n") -split "`n").Count | Should -Be 1
        $cmdlet = Invoke-RequiemExec -Request $CatRequest -Cas $Cas -WarningAction SilentlyContinue
        $cmdlet.ResultDigest | Should -Be $CatRun.Json.result_digest
    }

    It 'exec run --engine requiem|dual: accepted; an unknown engine is a usage error' {
        foreach ($engine in 'requiem', 'dual') {
            # The other engine of a dual run is this same command (REQUIEM_EXTERNAL_ENGINE, where the module reads it).
            $r = Invoke-Requiem @('exec', 'run', '--request', $CatRequest, '--engine', $engine, '--cas', $Cas) -Environment @{ REQUIEM_EXTERNAL_ENGINE = $Requiem }
            $r.ExitCode | Should -Be 0 -Because "$engine`: $($r.Stderr)"
            $r.Json.result_digest | Should -Be $CatRun.Json.result_digest
        }
        $bad = Invoke-Requiem @('exec', 'run', '--request', $CatRequest, '--engine', 'perl')
        $bad.ExitCode | Should -Be 1
        $bad.Stderr | Should -Match '--engine must be'
    }

    It 'exec replay --request --result --cas: match' {
        $r = Invoke-Requiem @('exec', 'replay', '--request', $CatRequest, '--result', $CatResult, '--cas', $Cas)
        $r.ExitCode | Should -Be 0 -Because $r.Stderr
        $r.Json.match | Should -BeTrue
        @($r.Json.differences).Count | Should -Be 0
        $r.Json.recorded_result_digest | Should -Be $CatRun.Json.result_digest
    }

    It 'digest verify --result: valid' {
        $r = Invoke-Requiem @('digest', 'verify', '--result', $CatResult)
        $r.ExitCode | Should -Be 0 -Because $r.Stderr
        $r.Json.valid | Should -BeTrue
        $r.Json.actual | Should -Be $CatRun.Json.result_digest
    }

    It 'digest file --file: BLAKE3 of the bytes (the known answer for "hello")' {
        $f = Join-Path $Dir 'hello.txt'
        [IO.File]::WriteAllBytes($f, [Text.Encoding]::ASCII.GetBytes('hello'))
        $r = Invoke-Requiem @('digest', 'file', '--file', $f)
        $r.ExitCode | Should -Be 0 -Because $r.Stderr
        $r.Json.hash | Should -Be 'ea8f163db38682925e4491c5e58d4bb3506ef8c14eb78a86e908c5624a67200f'
        $r.Json.algorithm | Should -Be 'BLAKE3'
        $r.Json.path | Should -Be $f
    }

    It 'cas put --in --cas [--compress zstd], then cas info --hash --cas' {
        $f = Join-Path $Dir 'blob.txt'
        Set-Content -LiteralPath $f -Value ('compressible ' * 500)
        $put = Invoke-Requiem @('cas', 'put', '--in', $f, '--cas', $Cas, '--compress', 'zstd')
        $put.ExitCode | Should -Be 0 -Because $put.Stderr
        $put.Json.hash | Should -Be (Get-RequiemDigest -LiteralPath $f -Domain Cas).Hash
        $put.Json.encoding | Should -Be 'zstd'
        $put.Json.stored_size | Should -BeLessThan $put.Json.size
        $info = Invoke-Requiem @('cas', 'info', '--hash', $put.Json.hash.Substring(0, 12), '--cas', $Cas)
        $info.ExitCode | Should -Be 0 -Because $info.Stderr
        $info.Json.hash | Should -Be $put.Json.hash
        $info.Json.size | Should -Be $put.Json.size
    }

    It 'cas verify --cas [--all | --sample N]: valid' {
        $all = Invoke-Requiem @('cas', 'verify', '--cas', $Cas, '--all')
        $all.ExitCode | Should -Be 0 -Because $all.Stderr
        $all.Json.valid | Should -BeTrue
        $all.Json.checked | Should -BeGreaterThan 3
        $sample = Invoke-Requiem @('cas', 'verify', '--cas', $Cas, '--sample', '2')
        $sample.ExitCode | Should -Be 0 -Because $sample.Stderr
        $sample.Json.checked | Should -Be 2
        @($sample.Json.corrupt).Count | Should -Be 0
    }

    It 'cas stats --cas --top 10' {
        $r = Invoke-Requiem @('cas', 'stats', '--cas', $Cas, '--top', '10')
        $r.ExitCode | Should -Be 0 -Because $r.Stderr
        $r.Json.object_count | Should -BeGreaterThan 3
        @($r.Json.top).Count | Should -BeLessOrEqual 10
        @($r.Json.by_encoding).Count | Should -BeGreaterThan 0
    }

    It 'cas gc --cas: a dry run (What-if lines on stderr only); --execute removes' {
        $store = Join-Path $Dir 'gc-cas'
        $orphan = Add-RequiemCasObject -Cas $store -InputObject 'unreferenced'
        $dry = Invoke-Requiem @('cas', 'gc', '--cas', $store, '--grace-days', '0')
        $dry.ExitCode | Should -Be 0 -Because $dry.Stderr
        $dry.Json.dry_run | Should -BeTrue
        @($dry.Json.candidates).hash | Should -Contain $orphan.Hash
        $dry.Stderr | Should -Match 'What if'
        $orphan.ObjectPath | Should -Exist
        $run = Invoke-Requiem @('cas', 'gc', '--cas', $store, '--execute', '--grace-days', '0', '--json')
        $run.ExitCode | Should -Be 0 -Because $run.Stderr
        $run.Json.dry_run | Should -BeFalse
        $run.Json.removed_count | Should -Be 1
        $orphan.ObjectPath | Should -Not -Exist
    }

    It 'health: the Requiem CLI''s keys and capability names' {
        $r = Invoke-Requiem @('health')
        $r.ExitCode | Should -Be 0 -Because $r.Stderr
        $r.Json.hash_primitive | Should -Be 'blake3'
        $r.Json.hash_backend | Should -Be 'vendored'
        $all = @($r.Json.sandbox_capabilities.enforced) + @($r.Json.sandbox_capabilities.partial) + @($r.Json.sandbox_capabilities.unsupported)
        foreach ($name in 'rlimits', 'process_groups', 'network_isolation', 'seccomp_bpf', 'job_objects', 'workspace_confinement', 'process_mitigations', 'restricted_tokens') {
            $all | Should -Contain $name
        }
    }

    It 'doctor and validate-replacement: healthy, exit 0, {"ok":true,"blockers":[]}' {
        $doctor = Invoke-Requiem @('doctor', '--cas', $Cas)
        $doctor.ExitCode | Should -Be 0 -Because $doctor.Stdout
        $doctor.Json.ok | Should -BeTrue
        @($doctor.Json.blockers).Count | Should -Be 0
        $doctor.Json.checks.check | Should -Contain 'hash_primitive'
        $ready = Invoke-Requiem @('validate-replacement', '--cas', $Cas)
        $ready.ExitCode | Should -Be 0 -Because $ready.Stdout
        $ready.Json.ok | Should -BeTrue
        $ready.Json.hash_primitive | Should -Be 'blake3'
        $ready.Json.hash_backend | Should -Be 'vendored'
    }

    It 'metrics --format json|prom' {
        $json = Invoke-Requiem @('metrics', '--format', 'json')
        $json.ExitCode | Should -Be 0 -Because $json.Stderr
        $json.Json.PSObject.Properties.Name | Should -Contain 'exec_total'
        $prom = Invoke-Requiem @('metrics', '--format', 'prom')
        $prom.ExitCode | Should -Be 0 -Because $prom.Stderr
        $prom.Stdout | Should -Match '(?m)^# TYPE requiem_exec_total counter$'
    }

    It 'config validate --file: a valid config' {
        $f = Join-Path $Dir 'config.json'
        Set-Content -LiteralPath $f -Value '{"config_version":"1.1","hash":{"primitive":"blake3","backend":"vendored"},"cas":{"version":"v2","compression":"identity"},"sandbox":{"deny_network":false,"max_memory_bytes":1073741824}}'
        $r = Invoke-Requiem @('config', 'validate', '--file', $f)
        $r.ExitCode | Should -Be 0 -Because $r.Stdout
        $r.Json.valid | Should -BeTrue
    }

    It 'proof generate --request --result --out, then proof verify --bundle: valid' {
        $bundle = Join-Path $Dir 'cat.proof.json'
        $gen = Invoke-Requiem @('proof', 'generate', '--request', $CatRequest, '--result', $CatResult, '--out', $bundle, '--cas', $Cas)
        $gen.ExitCode | Should -Be 0 -Because $gen.Stderr
        foreach ($field in 'merkle_root', 'input_digests', 'output_digests', 'policy_digest', 'replay_transcript_digest', 'signature_stub', 'engine_version', 'contract_version') {
            $gen.Json.PSObject.Properties.Name | Should -Contain $field
        }
        (Get-Content -LiteralPath $bundle -Raw | ConvertFrom-Json).merkle_root | Should -Be $gen.Json.merkle_root
        $verify = Invoke-Requiem @('proof', 'verify', '--bundle', $bundle, '--cas', $Cas)
        $verify.ExitCode | Should -Be 0 -Because $verify.Stdout
        $verify.Json.valid | Should -BeTrue
        $verify.Json.merkle_root | Should -Be $gen.Json.merkle_root
    }

    It 'bench run --spec --out, bench compare, bench gate within the threshold' {
        $BaselineRun.ExitCode | Should -Be 0 -Because $BaselineRun.Stderr
        $BaselineRun.Json.bench_report_version | Should -Be '1'
        (Get-Content -LiteralPath $Baseline -Raw | ConvertFrom-Json).spec_digest | Should -Be $BaselineRun.Json.spec_digest
        $cmpOut = Join-Path $BenchDir 'compare.json'
        $cmp = Invoke-Requiem @('bench', 'compare', '--baseline', $Baseline, '--current', $Slower, '--out', $cmpOut)
        $cmp.ExitCode | Should -Be 0 -Because $cmp.Stderr   # compare reports; only the gate fails
        $cmp.Json.bench_comparison_version | Should -Be '1'
        $cmpOut | Should -Exist
        $same = Invoke-Requiem @('bench', 'gate', '--baseline', $Baseline, '--current', $Baseline, '--threshold', '10.0')
        $same.ExitCode | Should -Be 0 -Because $same.Stderr
        $same.Json.regressed | Should -BeFalse
        $same.Json.threshold | Should -Be 10
    }

    It 'drift analyze --bench --out, then drift pretty --in renders the saved report' {
        $driftOut = Join-Path $BenchDir 'drift.json'
        $analyze = Invoke-Requiem @('drift', 'analyze', '--bench', $Baseline, '--out', $driftOut)
        $analyze.ExitCode | Should -Be 0 -Because $analyze.Stderr
        $analyze.Json.drift_report_version | Should -Be '1'
        $analyze.Json.deterministic | Should -BeTrue
        $pretty = Invoke-Requiem @('drift', 'pretty', '--in', $driftOut)
        $pretty.ExitCode | Should -Be 0 -Because $pretty.Stderr
        $pretty.Stdout | Should -Match '^Deterministic: all 1 case'
        $pretty.Stdout | Should -Match 'ok\s+work'
    }

    It 'policy explain, policy check --request, llm explain' {
        $explain = Invoke-Requiem @('policy', 'explain')
        $explain.ExitCode | Should -Be 0 -Because $explain.Stderr
        $explain.Json.effective_policy.mode | Should -Be 'permissive'
        $check = Invoke-Requiem @('policy', 'check', '--request', $CatRequest)
        $check.ExitCode | Should -Be 0 -Because $check.Stdout
        $check.Json.valid | Should -BeTrue
        $llm = Invoke-Requiem @('llm', 'explain')
        $llm.ExitCode | Should -Be 0 -Because $llm.Stderr
        @($llm.Json).mode | Should -Contain 'stochastic'
    }

    It '--allow-hash-fallback: without it a BLAKE3 failure is an error (exit 1); with it SHA-256 is used and said' {
        $f = Join-Path $Ws 'in.txt'
        $closed = Invoke-Requiem @('digest', 'file', '--file', $f) -Environment @{ REQUIEM_SIMULATE_BLAKE3_FAILURE = '1' }
        $closed.ExitCode | Should -Be 1
        $closed.Stdout | Should -BeNullOrEmpty
        $closed.Stderr | Should -Match 'hash_unavailable_blake3'
        $open = Invoke-Requiem @('--allow-hash-fallback', 'digest', 'file', '--file', $f) -Environment @{ REQUIEM_SIMULATE_BLAKE3_FAILURE = '1' }
        $open.ExitCode | Should -Be 0 -Because $open.Stderr
        $open.Json.algorithm | Should -Be 'SHA256'
        $open.Json.hash_fallback | Should -BeTrue
    }
}

Describe 'requiem <command> on a finding: exit 2 with the document on stdout' {
    It 'bench gate: a regression beyond --threshold' {
        $r = Invoke-Requiem @('bench', 'gate', '--baseline', $Baseline, '--current', $Slower, '--threshold', '10.0')
        $r.ExitCode | Should -Be 2 -Because $r.Stderr
        $r.Json.regressed | Should -BeTrue
        $r.Json.regressed_cases | Should -Contain 'work'
        $r.Stderr | Should -Match 'regression'
    }

    It 'validate-replacement and doctor: blockers (BLAKE3 unavailable)' {
        $env = @{ REQUIEM_SIMULATE_BLAKE3_FAILURE = '1' }
        $ready = Invoke-Requiem @('validate-replacement', '--cas', (Join-Path $Dir 'cas-b3')) -Environment $env
        $ready.ExitCode | Should -Be 2
        $ready.Json.ok | Should -BeFalse
        ($ready.Json.blockers -join "`n") | Should -Match 'hash_primitive'
        $doctor = Invoke-Requiem @('doctor', '--cas', (Join-Path $Dir 'cas-b3')) -Environment $env
        $doctor.ExitCode | Should -Be 2
        $doctor.Json.ok | Should -BeFalse
        ($doctor.Json.checks | Where-Object check -eq 'hash_primitive').status | Should -Be 'fail'
    }

    It 'proof verify: a tampered bundle' {
        $bundle = Join-Path $Dir 'tamper.proof.json'
        $gen = Invoke-Requiem @('proof', 'generate', '--request', $CatRequest, '--result', $CatResult, '--out', $bundle, '--cas', $Cas)
        $gen.ExitCode | Should -Be 0 -Because $gen.Stderr
        $text = Get-Content -LiteralPath $bundle -Raw
        $digest = $gen.Json.policy_digest
        [IO.File]::WriteAllText($bundle, $text.Replace($digest, ($digest[0] -eq 'a' ? 'b' : 'a') + $digest.Substring(1)))
        $r = Invoke-Requiem @('proof', 'verify', '--bundle', $bundle, '--cas', $Cas)
        $r.ExitCode | Should -Be 2
        $r.Json.valid | Should -BeFalse
        @($r.Json.reasons).Count | Should -BeGreaterThan 0
    }

    It 'exec replay: the recorded input changed, so the replay does not match' {
        $ws2 = Join-Path $Dir 'replay-ws'
        New-Item -ItemType Directory -Path $ws2 | Out-Null
        Set-Content -LiteralPath (Join-Path $ws2 'in.txt') -Value 'first'
        $req = Join-Path $Dir 'replay.request.json'
        @{ command = '/bin/cat'; argv = @('in.txt'); workspace_root = $ws2 } | ConvertTo-Json | Set-Content -LiteralPath $req
        $res = Join-Path $Dir 'replay.result.json'
        (Invoke-Requiem @('exec', 'run', '--request', $req, '--out', $res, '--cas', $Cas)).ExitCode | Should -Be 0
        Set-Content -LiteralPath (Join-Path $ws2 'in.txt') -Value 'second'
        $r = Invoke-Requiem @('exec', 'replay', '--request', $req, '--result', $res, '--cas', $Cas)
        $r.ExitCode | Should -Be 2 -Because $r.Stderr
        $r.Json.match | Should -BeFalse
        $r.Json.differences.field | Should -Contain 'stdout'
    }

    It 'cas verify: a corrupt object' {
        $store = New-CorruptStore
        $r = Invoke-Requiem @('cas', 'verify', '--cas', $store.Root, '--all')
        $r.ExitCode | Should -Be 2
        $r.Json.valid | Should -BeFalse
        $r.Json.corrupt.hash | Should -Contain $store.Hash
    }

    It 'digest verify: a result whose exit_code was edited' {
        $edited = Join-Path $Dir 'edited.result.json'
        $doc = Get-Content -LiteralPath $CatResult -Raw | ConvertFrom-Json
        $doc.exit_code = 1
        $doc | ConvertTo-Json -Depth 20 | Set-Content -LiteralPath $edited
        $r = Invoke-Requiem @('digest', 'verify', '--result', $edited)
        $r.ExitCode | Should -Be 2
        $r.Json.valid | Should -BeFalse
    }

    It 'config validate: an invalid config; policy check: a violation' {
        $bad = Join-Path $Dir 'bad-config.json'
        Set-Content -LiteralPath $bad -Value '{"config_version":"1.1","hash":{"primitive":"md5"}}'
        $config = Invoke-Requiem @('config', 'validate', '--file', $bad)
        $config.ExitCode | Should -Be 2
        $config.Json.valid | Should -BeFalse
        $req = New-Request 'strict' '/bin/echo' @('x') @{ env = @{ RANDOM = '1' }; policy = @{ mode = 'strict'; env_denylist = @('RANDOM') } }
        $policy = Invoke-Requiem @('policy', 'check', '--request', $req)
        $policy.ExitCode | Should -Be 2
        $policy.Json.valid | Should -BeFalse
        ($policy.Json.violations -join ' ') | Should -Match 'RANDOM'
    }
}

Describe 'requiem usage and errors: exit 1, message on stderr, nothing on stdout' {
    It '<What>' -ForEach @(
        @{ What = 'an unknown command'; Arguments = @('frobnicate'); Message = "unknown command 'frobnicate'" }
        @{ What = 'an unknown subcommand'; Arguments = @('cas', 'frobnicate'); Message = "'cas' takes: put, info, verify, stats, gc" }
        @{ What = 'an unknown flag'; Arguments = @('digest', 'file', '--path', 'x'); Message = "unknown flag '--path'" }
        @{ What = 'a missing required flag'; Arguments = @('exec', 'replay', '--request', 'r.json'); Message = '--result is required' }
        @{ What = 'a flag without its value'; Arguments = @('digest', 'file', '--file'); Message = '--file needs a value' }
        @{ What = 'a bad number'; Arguments = @('cas', 'verify', '--sample', 'many'); Message = '--sample must be a whole number' }
        @{ What = 'a bad threshold'; Arguments = @('bench', 'gate', '--baseline', 'a', '--current', 'b', '--threshold', 'ten'); Message = '--threshold must be a number' }
        @{ What = '--all with --sample'; Arguments = @('cas', 'verify', '--all', '--sample', '3'); Message = 'not both' }
        @{ What = 'a bad metrics format'; Arguments = @('metrics', '--format', 'xml'); Message = 'json or prom' }
        @{ What = 'a missing request file'; Arguments = @('exec', 'run', '--request', 'no-such.json'); Message = 'no-such\.json' }
        @{ What = 'an unknown object'; Arguments = @('cas', 'info', '--hash', ('ab' * 32), '--cas', 'CAS'); Message = 'CasObjectNotFound|not found' }
        @{ What = 'drift pretty of a bench spec'; Arguments = @('drift', 'pretty', '--in', 'SPEC'); Message = 'a bench spec' }
    ) {
        $a = @($Arguments | ForEach-Object { $_ -ceq 'CAS' ? $Cas : ($_ -ceq 'SPEC' ? $BenchSpec : $_) })
        $r = Invoke-Requiem $a
        $r.ExitCode | Should -Be 1 -Because "$($r.Stdout) $($r.Stderr)"
        $r.Stdout | Should -BeNullOrEmpty
        $r.Stderr | Should -Match $Message
        $r.Stderr | Should -Not -Match 'At line:|CategoryInfo|FullyQualifiedErrorId'
    }
}

Describe 'Gates run as a CI step (pwsh -File gate.ps1 with $ErrorActionPreference = ''Stop'')' {
    BeforeAll {
        # Each gate script is what a CI step holds: Stop, import, one gate. Its exit code is the step's result.
        function script:Invoke-GateScript([string] $Body, [hashtable] $Environment = @{}) {
            $file = Join-Path $Dir ('gate-' + [guid]::NewGuid().ToString('n') + '.ps1')
            Set-Content -LiteralPath $file -Value "`$ErrorActionPreference = 'Stop'`nImport-Module '$ModulePath'`n$Body`n"
            $saved = @{}
            foreach ($k in $Environment.Keys) { $saved[$k] = [Environment]::GetEnvironmentVariable($k); [Environment]::SetEnvironmentVariable($k, $Environment[$k]) }
            try { $out = & $script:Pwsh -NoProfile -NonInteractive -File $file 2>&1; $code = $LASTEXITCODE }
            finally { foreach ($k in $saved.Keys) { [Environment]::SetEnvironmentVariable($k, $saved[$k]) } }
            [pscustomobject]@{ ExitCode = $code; Text = ($out | ForEach-Object { "$_" }) -join "`n" }
        }
        $script:Corrupt = New-CorruptStore
        $script:GoodProof = Join-Path $Dir 'gate-good.proof.json'
        New-RequiemProof -Request $CatRequest -Result $CatResult -Cas $Cas -OutFile $GoodProof | Out-Null
        $script:TamperedProof = Join-Path $Dir 'gate-tampered.proof.json'
        $t = Get-Content -LiteralPath $GoodProof -Raw
        $root = ($t | ConvertFrom-Json).merkle_root
        [IO.File]::WriteAllText($TamperedProof, $t.Replace($root, ($root[0] -eq 'a' ? 'b' : 'a') + $root.Substring(1)))
        $script:AuditCas = Join-Path $Dir 'gate-audit'
        'audited once' | Add-RequiemCasObject -Cas $AuditCas | Out-Null
        'audited twice' | Add-RequiemCasObject -Cas $AuditCas | Out-Null
        $script:TamperedAuditCas = Join-Path $Dir 'gate-audit-tampered'
        Copy-Item -Recurse -LiteralPath $AuditCas -Destination $TamperedAuditCas
        $auditLog = Join-Path $TamperedAuditCas 'audit/log.jsonl'
        [IO.File]::WriteAllText($auditLog, ([regex]'"pid":\d+').Replace([IO.File]::ReadAllText($auditLog), '"pid":1', 1))
        $script:Gates = @{
            'Test-RequiemAuditLog:FailOnInvalid'        = @{ Finding = "Test-RequiemAuditLog -Cas '$TamperedAuditCas' -FailOnInvalid | Out-Null"; Pass = "Test-RequiemAuditLog -Cas '$AuditCas' -FailOnInvalid | Out-Null"; Message = 'EntryModified' }
            'Compare-RequiemBench:FailOnRegression'     = @{ Finding = "Compare-RequiemBench -Baseline '$Baseline' -Current '$Slower' -FailOnRegression | Out-Null"; Pass = "Compare-RequiemBench -Baseline '$Baseline' -Current '$Baseline' -FailOnRegression | Out-Null"; Message = 'Performance regression' }
            'Test-RequiemCas:FailOnInvalid'             = @{ Finding = "Test-RequiemCas -Cas '$($Corrupt.Root)' -All -FailOnInvalid | Out-Null"; Pass = "Test-RequiemCas -Cas '$Cas' -All -FailOnInvalid | Out-Null"; Message = 'is invalid: 1 corrupt' }
            'Test-RequiemProof:FailOnInvalid'           = @{ Finding = "Test-RequiemProof -LiteralPath '$TamperedProof' -Cas '$Cas' -FailOnInvalid | Out-Null"; Pass = "Test-RequiemProof -LiteralPath '$GoodProof' -Cas '$Cas' -FailOnInvalid | Out-Null"; Message = 'is invalid: merkle_root' }
            'Test-RequiemHealth:FailOnBlocker'          = @{ Finding = "Test-RequiemHealth -Cas '$(Join-Path $Dir 'gate-cas-b3')' -FailOnBlocker | Out-Null"; Pass = "Test-RequiemHealth -Cas '$(Join-Path $Dir 'gate-cas')' -FailOnBlocker | Out-Null"; Message = 'Unhealthy: hash_primitive'; Env = @{ REQUIEM_SIMULATE_BLAKE3_FAILURE = '1' } }
            'Test-RequiemReplacement:FailOnBlocker'     = @{ Finding = "Test-RequiemReplacement -Cas '$(Join-Path $Dir 'gate-cas-b3')' -FailOnBlocker | Out-Null"; Pass = "Test-RequiemReplacement -Cas '$(Join-Path $Dir 'gate-cas')' -FailOnBlocker | Out-Null"; Message = 'Not ready to replace'; Env = @{ REQUIEM_SIMULATE_BLAKE3_FAILURE = '1' } }
        }
    }

    It 'covers every -FailOn* parameter the module has' {
        $inModule = Get-Command -Module Requiem | ForEach-Object { $c = $_; $c.Parameters.Keys | Where-Object { $_ -like 'FailOn*' } | ForEach-Object { "$($c.Name):$_" } }
        @($inModule | Sort-Object) | Should -Be @($Gates.Keys | Sort-Object)
    }

    It '<_>: exits non-zero on a finding (with its message), 0 without one' -ForEach @(
        'Compare-RequiemBench:FailOnRegression', 'Test-RequiemCas:FailOnInvalid', 'Test-RequiemProof:FailOnInvalid',
        'Test-RequiemHealth:FailOnBlocker', 'Test-RequiemReplacement:FailOnBlocker', 'Test-RequiemAuditLog:FailOnInvalid'
    ) {
        $gate = $Gates[$_]
        $findingEnvironment = if ($gate.Env) { $gate.Env } else { @{} }
        $finding = Invoke-GateScript $gate.Finding -Environment $findingEnvironment
        "$($finding.ExitCode) $($finding.Text)" | Should -Not -Match '^0 ' -Because 'a finding must fail the step'
        $finding.Text | Should -Match $gate.Message
        $clean = Invoke-GateScript $gate.Pass
        $clean.ExitCode | Should -Be 0 -Because $clean.Text
    }

    It 'Test-RequiemHealth -FailOnBlocker writes the result before the HealthBlocker error' {
        $r = Invoke-FreshPwsh -AllowFailure -Environment @{ REQUIEM_SIMULATE_BLAKE3_FAILURE = '1' } -Script @"
Import-Module '$ModulePath'
`$checks = @()
try { Test-RequiemHealth -Cas '$(Join-Path $Dir 'gate-cas-b3')' -FailOnBlocker | ForEach-Object { `$checks += `$_ } } catch { 'ERROR ' + `$_.FullyQualifiedErrorId; 'TARGET ' + `$_.TargetObject.Ok }
'CHECKS ' + `$checks.Count
"@
        $r | Should -Contain 'ERROR HealthBlocker,Requiem.PowerShell.TestRequiemHealthCommand'
        $r | Should -Contain 'TARGET False'
        ($r | Where-Object { $_ -like 'CHECKS *' }) | Should -Not -Be 'CHECKS 0'
    }

    It 'every help example and parameter text about -FailOn* sets $ErrorActionPreference = ''Stop'' or uses the requiem command' {
        $shows = { param($t) $t -match "\`$ErrorActionPreference\s*=\s*'Stop'" -or $t -match '(?m)^\s*requiem ' -or $t -match '`requiem ' }
        $offenders = foreach ($file in Get-ChildItem (Join-Path $RepoRoot 'docs/help') -Filter '*-*.md') {
            $lines = Get-Content -LiteralPath $file.FullName
            $section = ''; $inCode = $false; $code = @(); $param = $null; $paramText = @()
            foreach ($line in $lines + '## END') {
                if ($line -match '^```') {
                    if ($inCode -and $section -eq 'EXAMPLES') {
                        $block = $code -join "`n"
                        if ($block -match '-FailOn\w+' -and -not (& $shows $block)) { "$($file.Name) example: $($code[0])" }
                    }
                    $inCode = -not $inCode; $code = @(); continue
                }
                if ($inCode) { $code += $line; continue }
                if ($line -match '^### ' -or $line -match '^## ') {
                    if ($param -and -not (& $shows ($paramText -join "`n"))) { "$($file.Name) parameter $param" }
                    $param = if ($line -match '^### (-FailOn\w+)') { $Matches[1] } else { $null }
                    $paramText = @()
                }
                elseif ($param) { $paramText += $line }
                if ($line -match '^## (\w+)') { $section = $Matches[1] }
            }
        }
        $offenders | Should -BeNullOrEmpty
    }
}

Describe 'Measure-RequiemDrift with a saved drift report (drift pretty)' {
    It 'renders the saved report as it is (-Report, a path piped in, JSON text) and writes it again with -OutFile' {
        $driftFile = Join-Path $Dir 'saved.drift.json'
        $analysed = Measure-RequiemDrift -Bench $Baseline -OutFile $driftFile
        $again = Measure-RequiemDrift -Report $driftFile
        $again | Should -BeOfType Requiem.Engine.Bench.DriftReport
        $again.ToJson() | Should -Be $analysed.ToJson()
        $again.ToPrettyString() | Should -Be $analysed.ToPrettyString()
        (Get-Item $driftFile | Measure-RequiemDrift).ToJson() | Should -Be $analysed.ToJson()
        (Measure-RequiemDrift -InputObject (Get-Content -LiteralPath $driftFile -Raw)).Deterministic | Should -Be $analysed.Deterministic
        $copy = Join-Path $Dir 'copy.drift.json'
        Measure-RequiemDrift -Report $driftFile -OutFile $copy | Out-Null
        Get-Content -LiteralPath $copy -Raw | Should -Be (Get-Content -LiteralPath $driftFile -Raw)
    }

    It 'names the document type it found when given something else: <What>' -ForEach @(
        @{ What = 'a proof bundle'; File = 'PROOF'; Pattern = 'is a proof bundle' }
        @{ What = 'an execution result'; File = 'RESULT'; Pattern = 'is an execution result' }
        @{ What = 'a bench spec'; File = 'SPEC'; Pattern = 'is a bench spec' }
    ) {
        $path = switch ($File) { 'PROOF' { Join-Path $Dir 'cat.proof.json' } 'RESULT' { $CatResult } 'SPEC' { $BenchSpec } }
        if (-not (Test-Path $path)) { New-RequiemProof -Request $CatRequest -Result $CatResult -Cas $Cas -OutFile $path | Out-Null }
        $err = $null
        Measure-RequiemDrift -Report $path -ErrorVariable err -ErrorAction SilentlyContinue | Out-Null
        $err[0].FullyQualifiedErrorId | Should -Be 'NotABenchReport,Requiem.PowerShell.MeasureRequiemDriftCommand'
        $err[0].Exception.Message | Should -Match $Pattern
        $err[0].TargetObject | Should -Be $path
    }
}
