BeforeAll {
    . (Join-Path $PSScriptRoot 'TestSetup.ps1')
    $script:Dir = New-TestDirectory
}
AfterAll { Remove-Item -Recurse -Force $script:Dir -ErrorAction Ignore }

Describe 'Test-RequiemCas on every core' {
    BeforeAll {
        # 240 small objects and two past the parallel threshold, identity and zstd; five of them spoiled in ways a disk
        # can spoil them, spread over the store.
        $script:Store = Join-Path $Dir 'store'
        $src = Join-Path $Dir 'src'
        New-Item -ItemType Directory -Path $src | Out-Null
        $rng = [Random]::new(15)
        $files = foreach ($i in 0..241) {
            $length = if ($i -ge 240) { 3MB + $i } else { 4096 + $i }
            $bytes = [byte[]]::new($length)
            $rng.NextBytes($bytes)
            for ($j = 0; $j -lt $length / 2; $j++) { $bytes[$j] = [byte]($j % 11) }   # zstd has something to compress
            $path = Join-Path $src "f$i.bin"
            [IO.File]::WriteAllBytes($path, $bytes)
            Get-Item -LiteralPath $path
        }
        $script:Objects = @(
            $files | Where-Object { [int]$_.BaseName.Substring(1) % 2 -eq 0 } | Add-RequiemCasObject -Cas $Store -Compress None
            $files | Where-Object { [int]$_.BaseName.Substring(1) % 2 -eq 1 } | Add-RequiemCasObject -Cas $Store -Compress Zstd
        )
        $script:Objects.Count | Should -Be 242
        $script:Spoiled = foreach ($k in 7, 50, 101, 160, 241) {
            $o = $Objects[$k]
            $bytes = [IO.File]::ReadAllBytes($o.ObjectPath)
            if ($k % 2 -eq 0) { $bytes[100] = $bytes[100] -bxor 0x10; [IO.File]::WriteAllBytes($o.ObjectPath, $bytes) }
            else { [IO.File]::WriteAllBytes($o.ObjectPath, $bytes[0..($bytes.Length - 9)]) }
            $o.Hash
        }
        $script:Sound = $Objects | Where-Object Hash -NotIn $Spoiled
    }

    It 'finds exactly the spoiled objects, in hash order, and counts every byte of the sound ones' {
        $r = Test-RequiemCas -All -Cas $Store
        $r.Valid | Should -BeFalse
        $r.Checked | Should -Be 242
        $r.Corrupt.Hash | Should -Be ([string[]]($Spoiled | Sort-Object { $_ } -CaseSensitive))
        foreach ($c in $r.Corrupt) { $c.Reason | Should -Match 'content hashes to|zstd frame does not decode' }
        $r.BytesChecked | Should -Be ($Sound | Measure-Object -Property Size -Sum).Sum
    }

    It 'gives the same report on one core (hash.max_threads = 1) as on every core' {
        $all = Test-RequiemCas -All -Cas $Store
        $config = Join-Path $Dir 'one-core.json'
        Set-Content -LiteralPath $config -Value '{"config_version":"1.1","hash":{"max_threads":1}}'
        $out = Invoke-FreshPwsh -Environment @{ REQUIEM_CONFIG = $config } -Script @"
Import-Module '$ModulePath'
`$r = Test-RequiemCas -All -Cas '$Store'
'checked=' + `$r.Checked
'bytes=' + `$r.BytesChecked
`$r.Corrupt | ForEach-Object { 'corrupt=' + `$_.Hash }
"@
        $out | Should -Contain "checked=$($all.Checked)"
        $out | Should -Contain "bytes=$($all.BytesChecked)"
        @($out | Where-Object { $_ -like 'corrupt=*' }) | Should -Be ([string[]]($all.Corrupt.Hash | ForEach-Object { "corrupt=$_" }))
    }

    It 'checks a sample on every core and finds a spoiled object in it' {
        $r = Test-RequiemCas -Sample 242 -Cas $Store
        $r.Checked | Should -Be 242
        ($r.Corrupt.Hash | Sort-Object) | Should -Be ([string[]]($Spoiled | Sort-Object))
    }
}
