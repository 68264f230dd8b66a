using System.Management.Automation;
using Requiem.Engine.Policy;
using Requiem.PowerShell.Internal;

namespace Requiem.PowerShell;

/// <summary>Get-RequiemPolicy: the Requiem CLI's <c>policy explain</c> (and <c>llm explain</c> with -Llm).</summary>
[Cmdlet(VerbsCommon.Get, "RequiemPolicy", DefaultParameterSetName = PolicySet)]
[OutputType(typeof(PolicyExplanation), typeof(LlmModeExplanation))]
public sealed class GetRequiemPolicyCommand : RequiemCmdlet
{
    private const string PolicySet = "Policy";
    private const string LlmSet = "Llm";

    /// <summary>Explain how LLM / stochastic workflows are classified (the Requiem CLI's <c>llm explain</c>).</summary>
    [Parameter(Mandatory = true, ParameterSetName = LlmSet)]
    public SwitchParameter Llm { get; set; }

    protected override void EndProcessingCore()
    {
        if (ParameterSetName == LlmSet) WriteObject(PolicyEngine.ExplainLlm(), enumerateCollection: true);
        else WriteObject(PolicyEngine.Explain(Config));
    }
}
