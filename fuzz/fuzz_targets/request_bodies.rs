//! Every request body a route parses, through the one parser the gateway
//! uses (`treaty_openai::parse_json`). The first byte picks the type.
#![no_main]

use libfuzzer_sys::fuzz_target;
use treaty_openai::parse_json;

fuzz_target!(|data: &[u8]| {
    let Some((which, body)) = data.split_first() else {
        return;
    };
    match which % 10 {
        0 => drop(parse_json::<treaty_openai::ChatCompletionRequest>(body)),
        1 => drop(parse_json::<treaty_openai::EmbeddingsRequest>(body)),
        2 => drop(parse_json::<treaty_openai::responses::CreateResponseRequest>(body)),
        3 => drop(parse_json::<treaty_openai::responses::ConversationCreate>(body)),
        4 => drop(parse_json::<treaty_openai::responses::ConversationUpdate>(body)),
        5 => drop(parse_json::<treaty_openai::responses::ConversationItemsCreate>(body)),
        6 => drop(parse_json::<treaty_runtime::agents::AgentCreate>(body)),
        7 => drop(parse_json::<treaty_runtime::agents::AgentUpdate>(body)),
        8 => drop(parse_json::<treaty_runtime::runs::RunCreate>(body)),
        _ => drop(parse_json::<treaty_runtime::runs::ToolOutputs>(body)),
    }
});
