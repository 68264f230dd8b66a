#requires -Version 7.4
<#
.SYNOPSIS
    Compiles platyPS-schema (2.0.0) cmdlet help markdown to one MAML file, for machines without platyPS.
.DESCRIPTION
    Reads every docs/help/<Verb-Noun>.md (about_*.md are skipped) and writes the MAML that Get-Help reads for
    binary cmdlets: synopsis, description, syntax per parameter set, parameters (from the yaml blocks),
    inputs, outputs, notes, examples and related links. Fails on a page that lacks a required section.
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory)] [string] $HelpDirectory,
    [Parameter(Mandatory)] [string] $Destination
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest

$ns = @{
    maml    = 'http://schemas.microsoft.com/maml/2004/10'
    command = 'http://schemas.microsoft.com/maml/dev/command/2004/10'
    dev     = 'http://schemas.microsoft.com/maml/dev/2004/10'
}

function Split-Sections {
    param([string[]] $Lines, [string] $Prefix)
    # Returns ordered (heading, lines) pairs for headings that start with $Prefix, ignoring headings inside code fences.
    $sections = [System.Collections.Generic.List[object]]::new()
    $current = $null
    $inFence = $false
    foreach ($line in $Lines) {
        if ($line -match '^```') { $inFence = -not $inFence }
        if (-not $inFence -and $line.StartsWith($Prefix) -and -not $line.StartsWith($Prefix + '#')) {
            $current = [pscustomobject]@{ Heading = $line.Substring($Prefix.Length).Trim(); Lines = [System.Collections.Generic.List[string]]::new() }
            $sections.Add($current)
            continue
        }
        if ($current) { $current.Lines.Add($line) }
    }
    return $sections
}

function Get-Paragraphs {
    param([string[]] $Lines)
    # Text outside code fences, split on blank lines; code fences become their own paragraph verbatim.
    $paras = [System.Collections.Generic.List[string]]::new()
    $buffer = [System.Collections.Generic.List[string]]::new()
    $inFence = $false
    foreach ($line in $Lines) {
        if ($line -match '^```') {
            if ($buffer.Count) { $paras.Add(($buffer -join ($inFence ? "`n" : ' ')).Trim()); $buffer.Clear() }
            $inFence = -not $inFence
            continue
        }
        if (-not $inFence -and [string]::IsNullOrWhiteSpace($line)) {
            if ($buffer.Count) { $paras.Add(($buffer -join ' ').Trim()); $buffer.Clear() }
            continue
        }
        $buffer.Add($inFence ? $line : $line.Trim())
    }
    if ($buffer.Count) { $paras.Add(($buffer -join ($inFence ? "`n" : ' ')).Trim()) }
    return @($paras | Where-Object { $_ })
}

function Get-Fence {
    param([string[]] $Lines)
    $inFence = $false; $code = [System.Collections.Generic.List[string]]::new(); $rest = [System.Collections.Generic.List[string]]::new(); $done = $false
    foreach ($line in $Lines) {
        if ($line -match '^```' -and -not $done) {
            if ($inFence) { $done = $true }
            $inFence = -not $inFence
            continue
        }
        if ($inFence) { $code.Add($line) } else { $rest.Add($line) }
    }
    [pscustomobject]@{ Code = ($code -join "`n"); Rest = $rest.ToArray() }
}

function Write-Paras {
    param([System.Xml.XmlWriter] $W, [string[]] $Paragraphs)
    $W.WriteStartElement('maml', 'description', $ns.maml)
    if (-not $Paragraphs) { $W.WriteElementString('maml', 'para', $ns.maml, '') }
    foreach ($p in $Paragraphs) { $W.WriteElementString('maml', 'para', $ns.maml, $p) }
    $W.WriteEndElement()
}

function Read-HelpPage {
    param([System.IO.FileInfo] $File)
    $lines = Get-Content -LiteralPath $File.FullName
    if ($lines[0] -eq '---') {
        $end = [Array]::IndexOf($lines, '---', 1)
        $lines = $lines[($end + 1)..($lines.Count - 1)]
    }
    $title = ($lines | Where-Object { $_ -match '^# ' } | Select-Object -First 1)
    if (-not $title) { throw "$($File.Name): no '# Command-Name' title" }
    $name = $title.Substring(2).Trim()
    $sections = @{}
    foreach ($s in (Split-Sections $lines '## ')) { $sections[$s.Heading] = $s.Lines.ToArray() }
    foreach ($required in 'SYNOPSIS', 'SYNTAX', 'DESCRIPTION', 'EXAMPLES', 'PARAMETERS') {
        if (-not $sections.ContainsKey($required)) { throw "$($File.Name): missing section '## $required'" }
    }

    $parameters = foreach ($p in (Split-Sections $sections['PARAMETERS'] '### ')) {
        if ($p.Heading -eq 'CommonParameters') { continue }
        $fence = Get-Fence $p.Lines
        $meta = @{}
        foreach ($l in ($fence.Code -split "`n")) { if ($l -match '^([^:]+):\s*(.*)$') { $meta[$Matches[1].Trim()] = $Matches[2].Trim() } }
        [pscustomobject]@{
            Name         = $p.Heading.TrimStart('-')
            Description  = @(Get-Paragraphs $fence.Rest)
            Type         = $meta['Type'] ?? 'Object'
            Sets         = @((($meta['Parameter Sets'] ?? '(All)') -split ',') | ForEach-Object Trim)
            Aliases      = $meta['Aliases']
            Required     = ($meta['Required'] ?? 'False') -match 'True'
            Position     = $meta['Position'] ?? 'Named'
            DefaultValue = $meta['Default value'] ?? 'None'
            Pipeline     = $meta['Accept pipeline input'] ?? 'False'
            Wildcards    = ($meta['Accept wildcard characters'] ?? 'False') -match 'True'
        }
    }
    $sets = @(Split-Sections $sections['SYNTAX'] '### ' | ForEach-Object { ($_.Heading -replace '\s*\(Default\)\s*$', '').Trim() })
    if (-not $sets) { $sets = @('__AllParameterSets') }

    $examples = foreach ($e in (Split-Sections $sections['EXAMPLES'] '### ')) {
        $fence = Get-Fence $e.Lines
        [pscustomobject]@{ Title = $e.Heading; Code = $fence.Code; Remarks = @(Get-Paragraphs $fence.Rest) }
    }
    if (-not $examples) { throw "$($File.Name): '## EXAMPLES' has no '### Example' entry" }

    $typed = {
        param($key)
        if (-not $sections.ContainsKey($key)) { return @() }
        foreach ($t in (Split-Sections $sections[$key] '### ')) {
            [pscustomobject]@{ Name = $t.Heading; Description = @(Get-Paragraphs $t.Lines) }
        }
    }
    $links = @()
    if ($sections.ContainsKey('RELATED LINKS')) {
        $links = foreach ($l in $sections['RELATED LINKS']) {
            if ($l -match '\[([^\]]+)\]\(([^)]*)\)') { [pscustomobject]@{ Text = $Matches[1]; Uri = $Matches[2] } }
        }
    }
    [pscustomobject]@{
        Name        = $name
        Synopsis    = (@(Get-Paragraphs $sections['SYNOPSIS']) -join ' ')
        Description = @(Get-Paragraphs $sections['DESCRIPTION'])
        Sets        = $sets
        Parameters  = @($parameters)
        Examples    = @($examples)
        Inputs      = @(& $typed 'INPUTS')
        Outputs     = @(& $typed 'OUTPUTS')
        Notes       = @(if ($sections.ContainsKey('NOTES')) { Get-Paragraphs $sections['NOTES'] })
        Links       = @($links)
    }
}

function Write-Parameter {
    param([System.Xml.XmlWriter] $W, $P, [string] $Position)
    $isSwitch = $P.Type -eq 'SwitchParameter'
    $W.WriteStartElement('command', 'parameter', $ns.command)
    $W.WriteAttributeString('required', $P.Required.ToString().ToLowerInvariant())
    $W.WriteAttributeString('variableLength', ($P.Type -like '*`[`]').ToString().ToLowerInvariant())
    $W.WriteAttributeString('globbing', $P.Wildcards.ToString().ToLowerInvariant())
    $W.WriteAttributeString('pipelineInput', $P.Pipeline)
    $W.WriteAttributeString('position', ($Position -match '^\d+$') ? $Position : 'named')
    $W.WriteAttributeString('aliases', ([string]::IsNullOrWhiteSpace($P.Aliases) ? 'none' : $P.Aliases))
    $W.WriteElementString('maml', 'name', $ns.maml, $P.Name)
    Write-Paras $W $P.Description
    if (-not $isSwitch) {
        $W.WriteStartElement('command', 'parameterValue', $ns.command)
        $W.WriteAttributeString('required', 'true')
        $W.WriteAttributeString('variableLength', 'false')
        $W.WriteString($P.Type)
        $W.WriteEndElement()
    }
    $W.WriteStartElement('dev', 'type', $ns.dev)
    $W.WriteElementString('maml', 'name', $ns.maml, $P.Type)
    $W.WriteElementString('maml', 'uri', $ns.maml, '')
    $W.WriteEndElement()
    $W.WriteElementString('dev', 'defaultValue', $ns.dev, $P.DefaultValue)
    $W.WriteEndElement()
}

$pages = Get-ChildItem -LiteralPath $HelpDirectory -Filter '*-*.md' | Sort-Object Name | ForEach-Object { Read-HelpPage $_ }

$settings = [System.Xml.XmlWriterSettings]::new()
$settings.Indent = $true
$settings.Encoding = [System.Text.UTF8Encoding]::new($false)
New-Item -ItemType Directory -Force -Path (Split-Path $Destination) | Out-Null
$w = [System.Xml.XmlWriter]::Create($Destination, $settings)
try {
    $w.WriteStartDocument()
    $w.WriteStartElement('helpItems', 'http://msh')
    $w.WriteAttributeString('schema', 'maml')
    foreach ($page in $pages) {
        $verb, $noun = $page.Name -split '-', 2
        $w.WriteStartElement('command', 'command', $ns.command)
        $w.WriteAttributeString('xmlns', 'maml', $null, $ns.maml)
        $w.WriteAttributeString('xmlns', 'dev', $null, $ns.dev)

        $w.WriteStartElement('command', 'details', $ns.command)
        $w.WriteElementString('command', 'name', $ns.command, $page.Name)
        $w.WriteElementString('command', 'verb', $ns.command, $verb)
        $w.WriteElementString('command', 'noun', $ns.command, $noun)
        Write-Paras $w @($page.Synopsis)
        $w.WriteEndElement()

        Write-Paras $w $page.Description

        $w.WriteStartElement('command', 'syntax', $ns.command)
        foreach ($set in $page.Sets) {
            $w.WriteStartElement('command', 'syntaxItem', $ns.command)
            $w.WriteElementString('maml', 'name', $ns.maml, $page.Name)
            foreach ($p in $page.Parameters | Where-Object { $_.Sets -contains '(All)' -or $_.Sets -contains $set -or $set -eq '__AllParameterSets' }) {
                Write-Parameter $w $p $p.Position
            }
            $w.WriteEndElement()
        }
        $w.WriteEndElement()

        $w.WriteStartElement('command', 'parameters', $ns.command)
        foreach ($p in $page.Parameters) { Write-Parameter $w $p $p.Position }
        $w.WriteEndElement()

        foreach ($kind in @(@('inputTypes', 'inputType', $page.Inputs), @('returnValues', 'returnValue', $page.Outputs))) {
            $w.WriteStartElement('command', $kind[0], $ns.command)
            foreach ($t in $kind[2]) {
                $w.WriteStartElement('command', $kind[1], $ns.command)
                $w.WriteStartElement('dev', 'type', $ns.dev)
                $w.WriteElementString('maml', 'name', $ns.maml, $t.Name)
                $w.WriteEndElement()
                Write-Paras $w $t.Description
                $w.WriteEndElement()
            }
            $w.WriteEndElement()
        }

        $w.WriteStartElement('maml', 'alertSet', $ns.maml)
        $w.WriteStartElement('maml', 'alert', $ns.maml)
        foreach ($n in $page.Notes) { $w.WriteElementString('maml', 'para', $ns.maml, $n) }
        $w.WriteEndElement()
        $w.WriteEndElement()

        $w.WriteStartElement('command', 'examples', $ns.command)
        foreach ($e in $page.Examples) {
            $w.WriteStartElement('command', 'example', $ns.command)
            $w.WriteElementString('maml', 'title', $ns.maml, "--------- $($e.Title) ---------")
            $w.WriteElementString('dev', 'code', $ns.dev, $e.Code)
            $w.WriteStartElement('dev', 'remarks', $ns.dev)
            foreach ($r in $e.Remarks) { $w.WriteElementString('maml', 'para', $ns.maml, $r) }
            $w.WriteEndElement()
            $w.WriteEndElement()
        }
        $w.WriteEndElement()

        $w.WriteStartElement('command', 'relatedLinks', $ns.command)
        foreach ($l in $page.Links) {
            $w.WriteStartElement('maml', 'navigationLink', $ns.maml)
            $w.WriteElementString('maml', 'linkText', $ns.maml, $l.Text)
            # Get-Help -Online opens the first non-empty uri and fails on one that is not absolute (a page's
            # relative .md link, which only helps readers of docs/help), so only absolute links are kept.
            $absolute = $null
            $uri = [uri]::TryCreate($l.Uri, [UriKind]::Absolute, [ref]$absolute) ? $l.Uri : ''
            $w.WriteElementString('maml', 'uri', $ns.maml, $uri)
            $w.WriteEndElement()
        }
        $w.WriteEndElement()

        $w.WriteEndElement()
    }
    $w.WriteEndElement()
    $w.WriteEndDocument()
}
finally {
    $w.Dispose()
}
Write-Verbose "Wrote help for $($pages.Count) commands to $Destination"
