BeforeAll {
    . (Join-Path $PSScriptRoot 'TestSetup.ps1')
    $script:Dir = New-TestDirectory

    function script:New-AuditedStore {
        # A store whose log holds one cas.put and then $Refs ref.set entries.
        param([string] $Name, [int] $Refs = 6)
        $cas = Join-Path $Dir $Name
        $object = "audit $Name" | Add-RequiemCasObject -Cas $cas
        foreach ($i in 1..$Refs) { Set-RequiemCasRef -Cas $cas -Name "r/$i" -Hash $object.Hash }
        $cas
    }

    function script:Get-LogPath([string] $Cas) { Join-Path $Cas 'audit/log.jsonl' }

    function script:Set-LogLines([string] $Cas, [string[]] $Lines) {
        [IO.File]::WriteAllText((Get-LogPath $Cas), (($Lines | ForEach-Object { "$_`n" }) -join ''))
    }

    function script:Get-ProblemCodes([string] $Cas) { @((Test-RequiemAuditLog -Cas $Cas).Problems.Code | Select-Object -Unique) }
}
AfterAll { Remove-Item -Recurse -Force $script:Dir -ErrorAction Ignore }

Describe 'Audit log entries' {
    It 'records puts, refs, collections and proofs, each chained to the one before, readable with jq' {
        $cas = Join-Path $Dir 'kinds'
        $o = '{"k":1}' | Add-RequiemCasObject -Cas $cas
        Set-RequiemCasRef -Cas $cas -Name keep/one -Hash $o.Hash
        Remove-RequiemCasRef -Cas $cas -Name keep/one
        $gc = Optimize-RequiemCas -Cas $cas -GracePeriod 0 -Force
        $gc.RemovedCount | Should -Be 1
        $entries = @(Get-RequiemAuditLog -Cas $cas)
        $entries.Action | Should -Be @('cas.put', 'ref.set', 'ref.removed', 'gc.run')
        $entries.Seq | Should -Be @(1, 2, 3, 4)
        $entries[0].Prev | Should -BeNullOrEmpty
        for ($i = 1; $i -lt 4; $i++) { $entries[$i].Prev | Should -Be $entries[$i - 1].Hash }
        $entries[1].Details['ref'] | Should -Be 'keep/one'
        $entries[3].Digests | Should -Be @($o.Hash) -Because 'the collection lists what it removed'
        $entries[3].Details['removed_objects'] | Should -Be 1
        $entries[0].Actor.Pid | Should -Be $PID
        $entries[0].Actor.User | Should -Be ([Environment]::UserName)
        # Plain JSON lines: jq reads every one, and the hash a line carries is the one the cmdlet reports.
        $jq = & jq -c '[.seq, .action, .hash]' (Get-LogPath $cas)
        $LASTEXITCODE | Should -Be 0
        $jq.Count | Should -Be 4
        ($jq[3] | ConvertFrom-Json)[2] | Should -Be $entries[3].Hash
    }

    It 'writes entries valid against the shipped JSON Schema (python jsonschema)' -Skip:(-not (Get-Command python3 -ErrorAction Ignore)) {
        & python3 -c 'import jsonschema' 2>$null
        if ($LASTEXITCODE -ne 0) { Set-ItResult -Skipped -Because 'python3 jsonschema is not installed'; return }
        $cas = New-AuditedStore -Name 'schema' -Refs 2
        'tenant entry' | Add-RequiemCasObject -Cas $cas -Tenant team-s | Out-Null
        $schema = Join-Path (Split-Path $ModulePath) 'schemas/audit-entry.schema.json'
        $script = @"
import json, jsonschema
schema = json.load(open('$schema'))
v = jsonschema.Draft202012Validator(schema)
n = 0
for path in ['$(Get-LogPath $cas)', '$(Join-Path $cas 'tenants/team-s/audit/log.jsonl')']:
    for line in open(path):
        v.validate(json.loads(line)); n += 1
bad = json.loads(open('$(Get-LogPath $cas)').readline()); bad['seq'] = 0
print(n, 'bad-accepted' if v.is_valid(bad) else 'ok')
"@
        $out = $script | python3 - 2>&1
        $LASTEXITCODE | Should -Be 0 -Because ($out -join "`n")
        $out | Should -Be '4 ok'
    }

    It 'hashes each entry as BLAKE3 over audit: and its canonical JSON without the hash member' {
        $cas = New-AuditedStore -Name 'hash' -Refs 1
        $line = (Get-Content (Get-LogPath $cas))[1]
        $entry = $line | ConvertFrom-Json -AsHashtable
        $stored = $entry['hash']
        # The module writes canonical JSON (sorted keys, no spaces): removing the hash member leaves the hashed text.
        $withoutHash = $line -replace ',"hash":"[0-9a-f]{64}"', ''
        (Get-RequiemDigest -InputObject $withoutHash -Domain Audit).Hash | Should -Be $stored
    }

    It 'filters by time, action (with wildcards) and reads every tenant with -AllTenants' {
        $cas = New-AuditedStore -Name 'filters' -Refs 2
        $t0 = (Get-Date).ToUniversalTime()
        Start-Sleep -Milliseconds 50
        '{"t":1}' | Add-RequiemCasObject -Cas $cas -Tenant team-a | Out-Null
        @(Get-RequiemAuditLog -Cas $cas -Action 'ref.*').Count | Should -Be 2
        @(Get-RequiemAuditLog -Cas $cas -Action 'cas.put').Count | Should -Be 1
        @(Get-RequiemAuditLog -Cas $cas -After $t0).Count | Should -Be 0
        @(Get-RequiemAuditLog -Cas $cas -Before $t0).Count | Should -Be 3
        $tenant = @(Get-RequiemAuditLog -Cas $cas -Tenant team-a)
        $tenant.Count | Should -Be 1
        $tenant[0].Tenant | Should -Be 'team-a'
        $all = @(Get-RequiemAuditLog -Cas $cas -AllTenants -After $t0)
        $all.Count | Should -Be 1
        $all[0].Tenant | Should -Be 'team-a'
        { Get-RequiemAuditLog -Cas $cas -AllTenants -Tenant team-a } | Should -Throw -ErrorId 'TenantAndAllTenants,Requiem.PowerShell.GetRequiemAuditLogCommand'
    }

    It 'records an execution with its result and request digests' {
        $cas = Join-Path $Dir 'exec'
        $ws = New-Item -ItemType Directory (Join-Path $Dir 'exec-ws')
        $r = Invoke-RequiemExec -Cas $cas -FilePath /bin/sh -ArgumentList '-c', 'echo audited' -WorkspaceRoot $ws.FullName -WarningAction SilentlyContinue
        $e = @(Get-RequiemAuditLog -Cas $cas -Action exec.recorded)
        $e.Count | Should -Be 1
        $e[0].Digests | Should -Contain $r.ResultDigest
        $e[0].Digests | Should -Contain $r.RequestDigest
        $e[0].Details['ref'] | Should -Be "results/$($r.ResultDigest)"
    }
}

Describe 'Audit files planted by someone who can write the store' -Skip:(-not $IsLinux) {
    BeforeAll {
        # Everything runs in a child pwsh under timeout(1): before the fix, a FIFO at a log name blocked for ever.
        function script:Invoke-PlantedCase([string] $Cas, [string] $Outside) {
            $script = @"
`$ErrorActionPreference = 'Continue'
Import-Module '$ModulePath'
`$o = [ordered]@{}
`$t = Test-RequiemAuditLog -Cas '$Cas'
`$o.valid = `$t.Valid
`$o.codes = @(`$t.Problems.Code)
`$e = `$null; try { `$null = Get-RequiemAuditLog -Cas '$Cas' -ErrorAction Stop } catch { `$e = `$_ }
`$o.get_error = if (`$e) { `$e.FullyQualifiedErrorId } else { '' }
`$o.get_target = if (`$e) { [string]`$e.TargetObject } else { '' }
`$h = (Get-RequiemCasRef -Cas '$Cas' -Name r/1).Hash
Set-RequiemCasRef -Cas '$Cas' -Name planted -Hash `$h -ErrorVariable w -ErrorAction SilentlyContinue
`$o.append_error = if (`$w) { `$w[0].FullyQualifiedErrorId } else { '' }
`$o.ref_set = (Get-RequiemCasRef -Cas '$Cas' -Name planted).Hash -eq `$h
`$o | ConvertTo-Json -Compress
"@
            $out = & timeout 120 $Pwsh -NoProfile -NonInteractive -Command $script 2>&1
            $LASTEXITCODE | Should -Not -Be 124 -Because 'a planted file must not make a reader or writer wait'
            ($out | Select-Object -Last 1) | ConvertFrom-Json
        }
    }

    It 'a FIFO at log.jsonl: reported, refused with AuditFileNotRegular, nothing waits on it' {
        $cas = New-AuditedStore -Name 'fifo-log' -Refs 2
        Remove-Item (Get-LogPath $cas)
        & mkfifo (Get-LogPath $cas)
        $r = Invoke-PlantedCase $cas
        $r.valid | Should -BeFalse
        $r.codes | Should -Contain 'NotRegularFile'
        $r.get_error | Should -Be 'AuditFileNotRegular,Requiem.PowerShell.GetRequiemAuditLogCommand'
        $r.get_target | Should -Be (Get-LogPath $cas)
        $r.append_error | Should -Be 'AuditFileNotRegular,Requiem.PowerShell.SetRequiemCasRefCommand'
        $r.ref_set | Should -BeTrue -Because 'the change happens; only its audit entry cannot be written'
    }

    It 'a symbolic link at log.jsonl is neither read nor appended through' {
        $cas = New-AuditedStore -Name 'link-log' -Refs 2
        $outside = Join-Path $Dir 'outside-log.jsonl'
        Move-Item (Get-LogPath $cas) $outside
        $before = [IO.File]::ReadAllText($outside)
        New-Item -ItemType SymbolicLink -Path (Get-LogPath $cas) -Target $outside | Out-Null
        $r = Invoke-PlantedCase $cas
        $r.codes | Should -Contain 'NotRegularFile'
        $r.append_error | Should -Be 'AuditFileNotRegular,Requiem.PowerShell.SetRequiemCasRefCommand'
        [IO.File]::ReadAllText($outside) | Should -Be $before -Because 'nothing is appended to the link target'
    }

    It 'a FIFO or a link at head is an invalid head; the next append replaces it, never writing through it' {
        $cas = New-AuditedStore -Name 'link-head' -Refs 2
        $head = Join-Path $cas 'audit/head'
        $outside = Join-Path $Dir 'outside-head'
        Set-Content -LiteralPath $outside -Value 'not yours'
        Remove-Item $head
        New-Item -ItemType SymbolicLink -Path $head -Target $outside | Out-Null
        $r = Invoke-PlantedCase $cas
        $r.codes | Should -Contain 'HeadInvalid'
        $r.append_error | Should -BeNullOrEmpty
        (Get-Content -LiteralPath $outside) | Should -Be 'not yours'
        (Get-Item -LiteralPath $head).LinkType | Should -BeNullOrEmpty -Because 'the append wrote a new head file in its place'
        (Test-RequiemAuditLog -Cas $cas).Problems.Code | Should -Contain 'AnchorReset' -Because 'the lost anchor is recorded in the log'

        $cas2 = New-AuditedStore -Name 'fifo-head' -Refs 2
        Remove-Item (Join-Path $cas2 'audit/head')
        & mkfifo (Join-Path $cas2 'audit/head')
        $r2 = Invoke-PlantedCase $cas2
        $r2.codes | Should -Contain 'HeadInvalid'
        $r2.append_error | Should -BeNullOrEmpty
    }

    It 'a symbolic link as the audit folder, or a FIFO at its lock, is refused' {
        $cas = New-AuditedStore -Name 'link-dir' -Refs 2
        $outside = Join-Path $Dir 'outside-audit'
        Move-Item (Join-Path $cas 'audit') $outside
        New-Item -ItemType SymbolicLink -Path (Join-Path $cas 'audit') -Target $outside | Out-Null
        $lines = @(Get-Content (Join-Path $outside 'log.jsonl')).Count
        $r = Invoke-PlantedCase $cas
        $r.codes | Should -Contain 'NotRegularFile'
        $r.append_error | Should -Be 'AuditFileNotRegular,Requiem.PowerShell.SetRequiemCasRefCommand'
        @(Get-Content (Join-Path $outside 'log.jsonl')).Count | Should -Be $lines

        $cas2 = New-AuditedStore -Name 'fifo-lock' -Refs 2
        Remove-Item (Join-Path $cas2 'audit/lock')
        & mkfifo (Join-Path $cas2 'audit/lock')
        $r2 = Invoke-PlantedCase $cas2
        $r2.append_error | Should -Be 'AuditFileNotRegular,Requiem.PowerShell.SetRequiemCasRefCommand'
    }
}

Describe 'Concurrent appends' {
    It '4 processes x 200 appends at once give 800 entries in one valid chain' {
        $cas = Join-Path $Dir 'concurrent'
        $object = 'shared object' | Add-RequiemCasObject -Cas $cas
        $go = Join-Path $Dir 'concurrent.go'
        $worker = Join-Path $Dir 'append-worker.ps1'
        Set-Content -LiteralPath $worker -Value @'
param($ModulePath, $Cas, $Hash, $Id, $Go)
$ErrorActionPreference = 'Stop'
Import-Module $ModulePath
while (-not (Test-Path -LiteralPath $Go)) { Start-Sleep -Milliseconds 5 }
foreach ($i in 1..200) { Set-RequiemCasRef -Cas $Cas -Name "w$Id/$i" -Hash $Hash }
'@
        $procs = foreach ($id in 1..4) {
            $psi = [Diagnostics.ProcessStartInfo]::new($Pwsh)
            foreach ($a in @('-NoProfile', '-NonInteractive', '-File', $worker, $ModulePath, $cas, $object.Hash, $id, $go)) { $psi.ArgumentList.Add($a) }
            $psi.UseShellExecute = $false
            [Diagnostics.Process]::Start($psi)
        }
        try {
            Start-Sleep -Seconds 2   # let every process load the module, so that the appends overlap
            New-Item -ItemType File $go | Out-Null
            foreach ($p in $procs) { $p.WaitForExit(300000) | Should -BeTrue; $p.ExitCode | Should -Be 0 }
        }
        finally { foreach ($p in $procs) { if (-not $p.HasExited) { $p.Kill($true) } } }

        $result = Test-RequiemAuditLog -Cas $cas
        $result.Valid | Should -BeTrue -Because (($result.Problems | ForEach-Object ToString) -join "`n")
        $result.Entries | Should -Be 801      # the put, then 800 ref.set
        $sets = @(Get-RequiemAuditLog -Cas $cas -Action ref.set)
        $sets.Count | Should -Be 800
        ($sets.Details | ForEach-Object { $_['ref'] } | Sort-Object -Unique).Count | Should -Be 800
        ($sets.Actor.Pid | Sort-Object -Unique).Count | Should -Be 4
        # Interleaved, not one process after another: the appends really raced.
        $switches = 0
        for ($i = 1; $i -lt $sets.Count; $i++) { if ($sets[$i].Actor.Pid -ne $sets[$i - 1].Actor.Pid) { $switches++ } }
        $switches | Should -BeGreaterThan 3
    }
}

Describe 'Test-RequiemAuditLog detects tampering' {
    It 'accepts an untouched log' {
        $cas = New-AuditedStore -Name 'clean'
        $r = Test-RequiemAuditLog -Cas $cas
        $r.Valid | Should -BeTrue
        $r.Entries | Should -Be 7
        $r.Problems.Count | Should -Be 0
        Test-RequiemAuditLog -Cas $cas -Quiet | Should -BeTrue
    }

    It 'detects an edited entry' {
        $cas = New-AuditedStore -Name 'edited'
        $lines = Get-Content (Get-LogPath $cas)
        $lines[3] = $lines[3] -replace '"r/3"', '"r/9"'
        Set-LogLines $cas $lines
        $r = Test-RequiemAuditLog -Cas $cas
        $r.Valid | Should -BeFalse
        $r.Problems[0].Code | Should -Be 'EntryModified'
        $r.Problems[0].Line | Should -Be 4
    }

    It 'detects a deleted entry' {
        $cas = New-AuditedStore -Name 'deleted'
        $lines = [Collections.Generic.List[string]](Get-Content (Get-LogPath $cas))
        $lines.RemoveAt(2)
        Set-LogLines $cas $lines
        Get-ProblemCodes $cas | Should -Contain 'MissingEntries'
    }

    It 'detects two swapped entries' {
        $cas = New-AuditedStore -Name 'swapped'
        $lines = Get-Content (Get-LogPath $cas)
        $lines[2], $lines[3] = $lines[3], $lines[2]
        Set-LogLines $cas $lines
        $codes = Get-ProblemCodes $cas
        $codes | Should -Contain 'OutOfOrder'
        $codes | Should -Contain 'ChainBroken'
    }

    It 'detects a forged entry appended with a correct hash and link' {
        $cas = New-AuditedStore -Name 'forged'
        # The forger copies the store and lets the module append there: the new line is a perfectly chained entry.
        $copy = Join-Path $Dir 'forged-copy'
        Copy-Item -Recurse $cas $copy
        $hash = (Get-RequiemCasRef -Cas $copy -Name r/1).Hash
        Set-RequiemCasRef -Cas $copy -Name forged -Hash $hash
        $forgedLine = (Get-Content (Get-LogPath $copy))[-1]
        Add-Content -LiteralPath (Get-LogPath $cas) -Value $forgedLine
        $r = Test-RequiemAuditLog -Cas $cas
        $r.Valid | Should -BeFalse
        $r.Problems.Code | Should -Be @('UnanchoredEntries')
    }

    It 'detects a truncated tail against the head anchor' {
        $cas = New-AuditedStore -Name 'truncated'
        $lines = Get-Content (Get-LogPath $cas)
        Set-LogLines $cas $lines[0..($lines.Count - 3)]
        $r = Test-RequiemAuditLog -Cas $cas
        $r.Valid | Should -BeFalse
        $r.Problems.Code | Should -Be @('TruncatedTail')
        $r.HeadSeq | Should -Be 7
        $r.LastSeq | Should -Be 5
    }

    It 'detects a removed head anchor' {
        $cas = New-AuditedStore -Name 'nohead'
        Remove-Item (Join-Path $cas 'audit/head')
        (Test-RequiemAuditLog -Cas $cas).Problems.Code | Should -Be @('HeadMissing')
    }

    It 'fails a pwsh -File gate with -FailOnInvalid, after writing the result' {
        $cas = New-AuditedStore -Name 'gate'
        $lines = Get-Content (Get-LogPath $cas)
        Set-LogLines $cas $lines[0..3]
        $gate = Join-Path $Dir 'audit-gate.ps1'
        Set-Content -LiteralPath $gate -Value @"
`$ErrorActionPreference = 'Stop'
Import-Module '$ModulePath'
`$r = Test-RequiemAuditLog -Cas '$cas' -FailOnInvalid
'not reached'
"@
        $out = & $Pwsh -NoProfile -NonInteractive -File $gate 2>&1
        $LASTEXITCODE | Should -Not -Be 0
        ($out -join "`n") | Should -Match '(?s)audit log.*is invalid'
        ($out -join "`n") | Should -Not -Match 'not reached'
        $caught = try { Test-RequiemAuditLog -Cas $cas -FailOnInvalid -OutVariable written | Out-Null; $null } catch { $_ }
        $written[0].Valid | Should -BeFalse -Because 'the result is written before the gate fails'
        $caught.FullyQualifiedErrorId | Should -Be 'AuditLogInvalid,Requiem.PowerShell.TestRequiemAuditLogCommand'
        $caught.TargetObject | Should -Be (Get-LogPath $cas)
    }
}
