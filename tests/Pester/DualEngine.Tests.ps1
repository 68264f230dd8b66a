# -Engine external / dual: a second engine that speaks the Requiem CLI's 'exec run --request <file> --out <file>'.
# The engines are written here: a faithful one (this module's Invoke-RequiemExec in a child pwsh, behind an executable
# sh script), a divergent one (the same, then exit code, stdout and result digest altered), and small sh scripts that
# fail, write garbage, or only count their calls.
BeforeAll {
    . (Join-Path $PSScriptRoot 'TestSetup.ps1')
    $script:Dir = New-TestDirectory
    $script:Ws = Join-Path $Dir 'ws'
    New-Item -ItemType Directory -Path $Ws | Out-Null
    $script:Saved = @{}
    foreach ($k in 'REQUIEM_CAS', 'REQUIEM_CONFIG', 'REQUIEM_EXTERNAL_ENGINE', 'REQUIEM_PWSH') { $Saved[$k] = [Environment]::GetEnvironmentVariable($k) }
    $env:REQUIEM_CAS = Join-Path $Dir 'cas'
    $script:Cas = $env:REQUIEM_CAS
    Remove-Item Env:REQUIEM_EXTERNAL_ENGINE, Env:REQUIEM_CONFIG -ErrorAction Ignore
    $script:DiffLog = Join-Path $Cas 'dual/diffs.jsonl'

    function script:New-Engine([string] $Name, [string] $Text) {
        $path = Join-Path $Dir $Name
        Set-Content -LiteralPath $path -Value $Text -NoNewline
        if ($Name -notlike '*.ps1') { chmod +x $path }
        $path
    }

    # Reads the contract's arguments the way the Requiem CLI is called: exec run --request <file> --out <file>.
    $argsPs1 = @'
if ($args[0] -ne 'exec' -or $args[1] -ne 'run') { [Console]::Error.WriteLine("usage: exec run --request <file> --out <file>"); exit 1 }
$req = $args[[array]::IndexOf($args, '--request') + 1]
$out = $args[[array]::IndexOf($args, '--out') + 1]
Import-Module 'MODULE_PATH'
'@.Replace('MODULE_PATH', $ModulePath)
    $script:FaithfulPs1 = New-Engine 'faithful.ps1' ($argsPs1 + @'

$null = Invoke-RequiemExec -Request $req -OutFile $out -ErrorAction Stop -WarningAction SilentlyContinue
exit 0
'@)
    # The faithful engine of the 20-request test is the requiem command shipped with the module (an executable, run
    # directly, not through pwsh by the module): the command a cutover compares with.
    $script:Faithful = Join-Path (Split-Path -Parent $ModulePath) 'bin/requiem'
    $env:REQUIEM_PWSH = $Pwsh
    $script:Divergent = New-Engine 'divergent.ps1' ($argsPs1 + @'

$tmp = "$out.tmp"
$null = Invoke-RequiemExec -Request $req -OutFile $tmp -ErrorAction Stop -WarningAction SilentlyContinue
$doc = Get-Content -LiteralPath $tmp -Raw | ConvertFrom-Json -AsHashtable
$doc.exit_code = [int]$doc.exit_code + 1
$doc.stdout_digest = ("divergent`n" | Add-RequiemCasObject).Hash   # in the store too, so the detail can show the bytes
$doc | ConvertTo-Json -Depth 10 | Set-Content -LiteralPath $tmp
$doc.result_digest = (Test-RequiemDigest -Result $tmp).Actual       # a self-consistent result of its own
$doc | ConvertTo-Json -Depth 10 | Set-Content -LiteralPath $out
exit 0
'@)
    $script:Failing = New-Engine 'failing-engine' "#!/bin/sh`necho 'engine exploded on purpose' >&2`nexit 1`n"
    $script:Garbage = New-Engine 'garbage-engine' @'
#!/bin/sh
while [ $# -gt 0 ]; do [ "$1" = --out ] && out=$2; shift; done
echo 'this is not a result' > "$out"
exit 0
'@
    # Counts its calls (one line per request, holding the request's marker) and answers with a minimal result document.
    $script:CallLog = Join-Path $Dir 'calls.log'
    $script:Counting = New-Engine 'counting-engine' @"
#!/bin/sh
while [ `$# -gt 0 ]; do case "`$1" in --request) req=`$2;; --out) out=`$2;; esac; shift; done
grep -o 'sample-[0-9]*' "`$req" | head -n 1 >> '$CallLog'
printf '{"request_digest":"%s","stdout_digest":"%s"}' 0000 0000 > "`$out"
exit 0
"@

    function script:New-Req([string] $Command, [string[]] $Argv = @(), [hashtable] $Extra = @{}) {
        $r = @{ command = $Command; argv = $Argv; workspace_root = $Ws; timeout_ms = 10000 }
        foreach ($k in $Extra.Keys) { $r[$k] = $Extra[$k] }
        $r
    }
}

AfterAll {
    foreach ($k in $Saved.Keys) { [Environment]::SetEnvironmentVariable($k, $Saved[$k]) }
    Remove-Item -Recurse -Force $Dir -ErrorAction Ignore
}

Describe 'Invoke-RequiemExec -Engine dual against a faithful external engine' {
    It 'matches the requiem command on every compared field for 20 varied requests, in the results and the -OutFile JSON' {
        New-Item -ItemType Directory (Join-Path $Ws 'sub') -Force | Out-Null
        Set-Content -LiteralPath (Join-Path $Ws 'input.txt') -Value 'input bytes'
        $requests = @(
            New-Req '/bin/echo' @('hello')
            New-Req '/bin/sh' @('-c', 'echo out; echo err >&2; exit 3')
            New-Req '/bin/sh' @('-c', 'printf "no newline \001\002"')
            New-Req '/bin/sh' @('-c', 'echo captured > dual-out.txt') @{ outputs = @('dual-out.txt') }
            New-Req '/bin/true' @() @{ outputs = @('never-written.txt') }
            New-Req '/bin/cat' @() @{ stdin = "from stdin`n" }
            New-Req '/bin/sh' @('-c', 'echo "$GREETING"') @{ env = @{ GREETING = 'hi there' } }
            New-Req '/bin/pwd' @() @{ cwd = 'sub' }
            New-Req '/bin/cat' @('input.txt') @{ inputs = @('input.txt') }
            New-Req '/bin/sleep' @('5') @{ timeout_ms = 300 }
            New-Req '/usr/bin/seq' @('1', '20000')
            New-Req '/usr/bin/seq' @('1', '5000') @{ max_output_bytes = 100 }
            New-Req '/bin/echo' @('no network') @{ policy = @{ deny_network = $true } }
            New-Req '/bin/echo' @('hermetic') @{ policy = @{ filesystem = 'hermetic' } }
            New-Req '/bin/echo' @('host') @{ policy = @{ filesystem = 'host' } }
            New-Req '/bin/sh' @('-c', 'kill -TERM $$')
            New-Req '/bin/false'
            New-Req '/bin/sh' @('-c', 'mkdir -p d/e && echo one > d/a.txt && echo two > d/e/b.txt') @{ outputs = @('d/a.txt', 'd/e/b.txt') }
            New-Req '/bin/echo' @('with space', 'ünïcödé ✓', '')
            New-Req '/bin/echo' @('limited') @{ policy = @{ max_memory_bytes = 268435456; max_open_files = 64 } }
        )
        $requests.Count | Should -Be 20
        $out = Join-Path $Dir 'faithful.json'
        $results = $requests | Invoke-RequiemExec -Engine dual -EnginePath $Faithful -OutFile $out -ErrorAction Stop -WarningVariable warnings -WarningAction SilentlyContinue
        @($results).Count | Should -Be 20
        foreach ($r in $results) {
            $because = "$($r.Request.Command) $($r.Request.Argv -join ' ') differs: $($r.DualRun.Differences -join '; ') $($r.DualRun.Message)"
            $r.DualRun.Status | Should -Be 'match' -Because $because
            $r.DualRun.Match | Should -BeTrue
            $r.DualRun.Compared | Should -BeTrue
            $r.DualRun.Sampled | Should -BeTrue
            $r.DualRun.ExternalResultDigest | Should -Be $r.ResultDigest
            $r.DualRun.ExternalResultDigestValid | Should -BeTrue
        }
        # the variety is real: exit codes, a timeout, a signal, captured and missing outputs
        ($results.ExitCode | Sort-Object -Unique) | Should -Contain 3
        ($results | Where-Object TimedOut).Count | Should -Be 1
        ($results | Where-Object Signal).Count | Should -BeGreaterOrEqual 1
        ($results.OutputFiles.Path) | Should -Contain 'd/e/b.txt'
        ($results.MissingOutputs) | Should -Contain 'never-written.txt'
        $doc = Get-Content -LiteralPath $out -Raw | ConvertFrom-Json
        $doc.Count | Should -Be 20
        @($doc | Where-Object { $_.dual_run.status -eq 'match' -and $_.dual_run.match -and $_.dual_run.differences.Count -eq 0 }).Count | Should -Be 20
        ($warnings | Where-Object { "$_" -like 'dual run*' }) | Should -BeNullOrEmpty
        # dual_run is not part of the result digest: the written document still verifies
        foreach ($element in [System.Text.Json.Nodes.JsonNode]::Parse((Get-Content -LiteralPath $out -Raw)).AsArray()) {
            $element['dual_run'] | Should -Not -BeNullOrEmpty
            (Test-RequiemDigest -Result $element.ToJsonString()).Valid | Should -BeTrue
        }
        Test-Path -LiteralPath $DiffLog | Should -BeFalse -Because 'matching runs add nothing to the diff log'
    }

    It '-Engine external (alias rust) returns the external engine''s result as the same result type' {
        $req = New-Req '/bin/sh' @('-c', 'echo external; exit 4')
        $own = Invoke-RequiemExec -Request $req
        $ext = Invoke-RequiemExec -Request $req -Engine rust -EnginePath $FaithfulPs1 -ErrorAction Stop
        $ext.PSObject.TypeNames[0] | Should -Be 'Requiem.Engine.Execution.ExecResult'   # the engine's types live in their own load context
        $ext.ExitCode | Should -Be 4
        $ext.ResultDigest | Should -Be $own.ResultDigest
        $ext.DualRun | Should -BeNullOrEmpty
    }
}

Describe 'Invoke-RequiemExec -Engine dual against a divergent engine' {
    It 'reports each mismatch with its fields in the result, the -OutFile JSON and the diff log, and nothing fails' {
        $requests = @((New-Req '/bin/echo' @('diverge one')), (New-Req '/bin/sh' @('-c', 'echo diverge two; exit 2')))
        $out = Join-Path $Dir 'divergent.json'
        $results = $requests | Invoke-RequiemExec -Engine dual -EnginePath $Divergent -OutFile $out -Scheduler Repro -ErrorAction Stop -WarningVariable warnings -WarningAction SilentlyContinue
        $?  | Should -BeTrue
        @($results).Count | Should -Be 2
        $expectedFields = @('exit_code', 'result_digest', 'stdout_digest')
        foreach ($r in $results) {
            $r.DualRun.Status | Should -Be 'mismatch'
            $r.DualRun.Match | Should -BeFalse
            @($r.DualRun.Differences.Field | Sort-Object) | Should -Be $expectedFields
            $exit = $r.DualRun.Differences | Where-Object Field -eq 'exit_code'
            $exit.Requiem | Should -Be "$($r.ExitCode)"
            $exit.External | Should -Be "$($r.ExitCode + 1)"
            $stdout = $r.DualRun.Differences | Where-Object Field -eq 'stdout_digest'
            $stdout.Requiem | Should -Be $r.StdoutDigest
            $stdout.External | Should -Be (Get-RequiemDigest -InputObject "divergent`n" -Domain Cas).Hash
            $stdout.Detail | Should -Match 'first difference at byte 7 \(line 1; \d+ vs 10 bytes\): requiem "diverge (one|two)\\n", external "divergent\\n"'
            ($r.DualRun.Differences | Where-Object Field -eq 'result_digest').Requiem | Should -Be $r.ResultDigest
            $r.DualRun.ExternalResultDigestValid | Should -BeTrue
        }
        @($warnings | Where-Object { "$_" -like "dual run: the external engine's result differs in 3 field(s)*exit_code*" }).Count | Should -Be 2

        $doc = Get-Content -LiteralPath $out -Raw | ConvertFrom-Json
        foreach ($d in $doc) {
            $d.dual_run.status | Should -Be 'mismatch'
            $d.dual_run.match | Should -BeFalse
            @($d.dual_run.differences.field | Sort-Object) | Should -Be $expectedFields
            ($d.dual_run.differences | Where-Object field -eq 'exit_code').external | Should -Be "$($d.exit_code + 1)"
        }

        # the diff log: one JSON line per mismatch (readable without the module), and Get-RequiemDualDiff
        $lines = @(Get-Content -LiteralPath $DiffLog | ConvertFrom-Json | Where-Object request_digest -in $results.RequestDigest)
        $lines.Count | Should -Be 2
        foreach ($line in $lines) {
            $line.status | Should -Be 'mismatch'
            @($line.differences.field | Sort-Object) | Should -Be $expectedFields
            $line.external_engine | Should -Be $Divergent
        }
        $entries = @($results | Get-RequiemDualDiff)
        $entries.Count | Should -Be 2
        $entries[0].PSObject.TypeNames[0] | Should -Be 'Requiem.Engine.Engines.DualDiffEntry'
        @(Get-RequiemDualDiff -Field 'exit_*' -Status mismatch).Count | Should -BeGreaterOrEqual 2
        @(Get-RequiemDualDiff -Field 'sandbox.*').Count | Should -Be 0
        @(Get-RequiemDualDiff -Last 1).Count | Should -Be 1
        # the log lives beside the objects: verification and garbage collection leave it alone
        (Test-RequiemCas -All).Valid | Should -BeTrue
        $null = Optimize-RequiemCas -GracePeriod 0 -Confirm:$false 6>$null
        @(Get-RequiemDualDiff -RequestDigest $results.RequestDigest).Count | Should -Be 2
    }

    It 'reports an engine that fails or writes no result as external_failed, keeps the Requiem result, and logs it' {
        foreach ($case in @(@{ Engine = $Failing; Id = 'ExternalEngineFailed'; Message = 'exited with code 1: engine exploded on purpose' },
                            @{ Engine = $Garbage; Id = 'ExternalEngineOutputInvalid'; Message = 'not valid JSON' })) {
            $r = Invoke-RequiemExec -Request (New-Req '/bin/echo' @("failing $($case.Id)")) -Engine dual -EnginePath $case.Engine -ErrorAction Stop -WarningVariable w -WarningAction SilentlyContinue
            $r.ExitCode | Should -Be 0
            $r.DualRun.Status | Should -Be 'external_failed'
            $r.DualRun.Match | Should -BeFalse
            $r.DualRun.Compared | Should -BeFalse
            $r.DualRun.ErrorId | Should -Be $case.Id
            $r.DualRun.Message | Should -BeLike "*$($case.Message)*"
            ($w -join ' ') | Should -BeLike "*external engine failed ($($case.Id))*"
            $logged = @(Get-RequiemDualDiff -RequestDigest $r.RequestDigest -Status external_failed)
            $logged.Count | Should -Be 1
            $logged[0].ErrorId | Should -Be $case.Id
        }
    }
}

Describe 'The dual-run diff log under concurrent processes' {
    It 'keeps every line whole when 4 processes log 50 mismatches each at once' {
        $store = Join-Path $Dir 'concurrent-cas'
        $minimal = New-Engine 'minimal-engine' @'
#!/bin/sh
while [ $# -gt 0 ]; do [ "$1" = --out ] && out=$2; shift; done
printf '{"request_digest":"0","stdout_digest":"0","exit_code":9}' > "$out"
'@
        $child = @'
param($ModulePath, $Store, $Ws, $Engine, $Name)
Import-Module $ModulePath
1..50 | ForEach-Object { @{ command = '/bin/echo'; argv = @("$Name-$_"); workspace_root = $Ws } } |
    Invoke-RequiemExec -Engine dual -EnginePath $Engine -Cas $Store -ThrottleLimit 4 -WarningAction SilentlyContinue | Out-Null
'@
        $childFile = New-Engine 'log-writer.ps1' $child
        $processes = foreach ($n in 1..4) {
            $psi = [Diagnostics.ProcessStartInfo]::new($Pwsh)
            foreach ($a in '-NoProfile', '-NonInteractive', '-File', $childFile, '-ModulePath', $ModulePath, '-Store', $store, '-Ws', $Ws, '-Engine', $minimal, '-Name', "writer$n") { $psi.ArgumentList.Add($a) }
            [Diagnostics.Process]::Start($psi)
        }
        try {
            foreach ($p in $processes) { $p.WaitForExit(600000) | Should -BeTrue; $p.ExitCode | Should -Be 0 }
        }
        finally {
            foreach ($p in $processes) { if (-not $p.HasExited) { $p.Kill($true) } }
        }
        $lines = @(Get-Content -LiteralPath (Join-Path $store 'dual/diffs.jsonl'))
        $lines.Count | Should -Be 200
        $entries = @($lines | ConvertFrom-Json)
        @($entries.request_digest | Sort-Object -Unique).Count | Should -Be 200
        @($entries | Where-Object { $_.status -eq 'mismatch' -and ($_.differences.field -contains 'exit_code') }).Count | Should -Be 200
        @($entries.pid | Sort-Object -Unique).Count | Should -Be 4
        @(Get-RequiemDualDiff -Cas $store -WarningVariable broken).Count | Should -Be 200
        $broken | Should -BeNullOrEmpty
    }
}

Describe 'Invoke-RequiemExec -Engine external: typed errors' {
    It '<Id> for <Case>' -ForEach @(
        @{ Case = 'an engine that exits 1'; Id = 'ExternalEngineFailed'; Engine = { $Failing } }
        @{ Case = 'an engine that writes no result'; Id = 'ExternalEngineOutputInvalid'; Engine = { $Garbage } }
    ) {
        $engine = & $Engine
        $err = $null
        $r = Invoke-RequiemExec -Request (New-Req '/bin/echo' @('x')) -Engine external -EnginePath $engine -ErrorVariable err -ErrorAction SilentlyContinue
        $r | Should -BeNullOrEmpty
        $err.Count | Should -Be 1
        $err[0].FullyQualifiedErrorId | Should -Be "$Id,Requiem.PowerShell.InvokeRequiemExecCommand"
        $err[0].TargetObject | Should -Be $engine
    }

    It 'ExternalEngineNotFound, before anything runs, for a path that does not exist' {
        $missing = Join-Path $Dir 'no-such-engine'
        $thrown = { Invoke-RequiemExec -Request (New-Req '/bin/echo' @('x')) -Engine external -EnginePath $missing -ErrorAction Stop } |
            Should -Throw -ErrorId 'ExternalEngineNotFound,Requiem.PowerShell.InvokeRequiemExecCommand' -PassThru
        $thrown.TargetObject | Should -Be $missing
    }

    It 'ExternalEngineNotConfigured when no engine is given anywhere' {
        { Invoke-RequiemExec -Request (New-Req '/bin/echo' @('x')) -Engine external -ErrorAction Stop } |
            Should -Throw -ErrorId 'ExternalEngineNotConfigured,Requiem.PowerShell.InvokeRequiemExecCommand'
    }

    It 'refuses -DualSampleRate without -Engine dual and -EnginePath with -Engine requiem' {
        { Invoke-RequiemExec -Request (New-Req '/bin/echo' @('x')) -DualSampleRate 0.5 -ErrorAction Stop } |
            Should -Throw -ErrorId 'DualSampleRateWithoutDual,Requiem.PowerShell.InvokeRequiemExecCommand'
        { Invoke-RequiemExec -Request (New-Req '/bin/echo' @('x')) -EnginePath $Failing -ErrorAction Stop } |
            Should -Throw -ErrorId 'EnginePathWithoutExternal,Requiem.PowerShell.InvokeRequiemExecCommand'
    }
}

Describe 'Invoke-RequiemExec -DualSampleRate' {
    It 'runs the second engine on about a quarter of 40 requests, the same ones every time' {
        $store = Join-Path $Dir 'sample-cas'
        $requests = 1..40 | ForEach-Object { New-Req '/bin/echo' @("sample-$_") }
        $runs = foreach ($round in 1, 2) {
            Remove-Item -LiteralPath $CallLog -ErrorAction Ignore
            $results = $requests | Invoke-RequiemExec -Engine dual -EnginePath $Counting -DualSampleRate 0.25 -Cas $store -WarningAction SilentlyContinue -ErrorAction Stop
            $called = if (Test-Path $CallLog) { @(Get-Content -LiteralPath $CallLog) } else { @() }
            , @{ Results = $results; Called = $called }
        }
        $first = @($runs[0].Results | Where-Object { $_.DualRun.Sampled } | ForEach-Object { $_.Request.Argv[0] } | Sort-Object)
        # 40 draws at p = 0.25: mean 10, sd 2.7; outside 3..19 has a probability below 0.1 %.
        $first.Count | Should -BeGreaterOrEqual 3
        $first.Count | Should -BeLessOrEqual 19
        # the external engine ran on exactly the sampled requests, and only once each
        @($runs[0].Called | Sort-Object) | Should -Be $first
        # and the second round samples the same requests
        @($runs[1].Results | Where-Object { $_.DualRun.Sampled } | ForEach-Object { $_.Request.Argv[0] } | Sort-Object) | Should -Be $first
        @($runs[1].Called | Sort-Object) | Should -Be $first
        foreach ($r in $runs[0].Results | Where-Object { -not $_.DualRun.Sampled }) {
            $r.DualRun.Status | Should -Be 'not_sampled'
            $r.DualRun.Compared | Should -BeFalse
            $r.DualRun.SampleRate | Should -Be 0.25
        }
        # the sample follows the request digest (first 8 bytes as a fraction below the rate)
        foreach ($r in $runs[0].Results) {
            $fraction = [Convert]::ToUInt64($r.RequestDigest.Substring(0, 16), 16) / [Math]::Pow(2, 64)
            $r.DualRun.Sampled | Should -Be ($fraction -lt 0.25)
        }
    }
}

Describe 'Invoke-RequiemExec -Engine dual: choosing the external engine' {
    It 'says clearly, once, that no external engine is configured, and marks every result' {
        $out = Join-Path $Dir 'no-engine.json'
        $results = @((New-Req '/bin/echo' @('a')), (New-Req '/bin/echo' @('b'))) |
            Invoke-RequiemExec -Engine dual -OutFile $out -ErrorAction Stop -WarningVariable w -WarningAction SilentlyContinue
        @($w).Count | Should -Be 1
        "$($w[0])" | Should -BeLike '*no external engine is configured*-EnginePath*REQUIEM_EXTERNAL_ENGINE*engine.external_path*nothing was compared*'
        foreach ($r in $results) {
            $r.DualRun.Status | Should -Be 'no_external_engine'
            $r.DualRun.Match | Should -BeFalse
            $r.DualRun.Compared | Should -BeFalse
        }
        @((Get-Content -LiteralPath $out -Raw | ConvertFrom-Json).dual_run.status | Sort-Object -Unique) | Should -Be 'no_external_engine'
    }

    It 'takes the engine from $env:REQUIEM_EXTERNAL_ENGINE, then engine.external_path in the config' {
        $store = Join-Path $Dir 'choose-cas'
        $config = Join-Path $Dir 'engine-config.json'
        @{ config_version = '1.1'; engine = @{ external_path = $Counting; dual_sample_rate = 1 } } | ConvertTo-Json | Set-Content -LiteralPath $config
        (Test-RequiemConfig -Path $config).Valid | Should -BeTrue
        try {
            $env:REQUIEM_CONFIG = $config
            $r = Invoke-RequiemExec -Request (New-Req '/bin/echo' @('sample-config')) -Engine dual -Cas $store -WarningAction SilentlyContinue
            $r.DualRun.ExternalEngine | Should -Be $Counting
            $r.DualRun.ExternalEngineSource | Should -BeLike "engine.external_path in '*engine-config.json'"
            $r.DualRun.Compared | Should -BeTrue
            $env:REQUIEM_EXTERNAL_ENGINE = $Failing
            $r = Invoke-RequiemExec -Request (New-Req '/bin/echo' @('sample-env')) -Engine dual -Cas $store -WarningAction SilentlyContinue
            $r.DualRun.ExternalEngine | Should -Be $Failing
            $r.DualRun.ExternalEngineSource | Should -Be '$env:REQUIEM_EXTERNAL_ENGINE'
            $r = Invoke-RequiemExec -Request (New-Req '/bin/echo' @('sample-param')) -Engine dual -EnginePath $Counting -Cas $store -WarningAction SilentlyContinue
            $r.DualRun.ExternalEngineSource | Should -Be '-EnginePath'
        }
        finally {
            Remove-Item Env:REQUIEM_CONFIG, Env:REQUIEM_EXTERNAL_ENGINE -ErrorAction Ignore
        }
    }
}
