"""Words of the synthetic texts: filler, per-topic and per-sub-topic vocabularies.

Sub-topic words carry the latent user x post match into the text, so that text features
(TF-IDF + SVD) can recover it; the truth never reads text, it reads the sub-topic id.
"""

FILLER = ["the", "of", "and", "to", "in", "a", "is", "that", "for", "it", "as", "was", "with", "be", "by", "on", "not", "he", "i", "this", "are", "or", "his", "from", "at", "which", "but", "have", "an", "they", "you", "were", "her", "she", "there", "been", "one", "all", "we", "their", "has", "would", "when", "if", "so", "no", "will", "more", "about", "up", "out", "who", "them", "some", "could", "what", "into", "than", "then", "only", "its", "after", "also", "two", "over", "first", "new", "very", "just", "because", "any", "these", "people", "time", "year", "way", "many", "even", "most", "other", "now", "well", "back", "much", "still", "own", "while", "where", "those", "though", "made", "after", "before", "said", "says", "like"]

TOPIC_WORDS = {
    "business": ["company", "firm", "market", "profit", "revenue", "shares", "investors", "economy", "growth", "deal", "chief", "executive", "quarter", "sales", "prices", "billion", "million", "costs", "customers", "board"],
    "covid": ["covid", "coronavirus", "pandemic", "virus", "cases", "health", "covid19", "sarscov2", "outbreak", "infection", "symptoms", "deaths", "spread", "public", "cdc", "who"],
    "entertainment": ["star", "show", "fans", "stage", "singer", "actress", "actor", "celebrity", "audience", "performance", "famous", "festival", "concert", "tour", "release"],
    "movie": ["film", "movie", "plot", "acting", "director", "scenes", "story", "characters", "cast", "script", "screen", "performance", "ending", "cinema", "watch", "minutes"],
    "politics": ["government", "minister", "party", "election", "vote", "labour", "tory", "parliament", "policy", "leader", "campaign", "mps", "prime", "secretary", "opposition"],
    "sport": ["match", "game", "team", "season", "players", "coach", "win", "league", "cup", "champion", "final", "victory", "score", "injury", "club"],
    "tech": ["technology", "digital", "software", "users", "computer", "internet", "devices", "online", "data", "systems", "firms", "network", "phones", "mobile", "web"],
}

SUBTOPICS = {
    "business": {
        "markets": ["stocks", "bonds", "index", "dow", "nasdaq", "trading", "traders", "rally", "slump", "yields", "dollar", "euro", "currency", "hedge"],
        "banking": ["bank", "banks", "lending", "loans", "mortgage", "interest", "rates", "deposits", "credit", "debt", "central", "regulator"],
        "energy": ["oil", "gas", "opec", "barrel", "crude", "pipeline", "fuel", "petrol", "electricity", "power", "coal", "drilling", "refinery"],
        "retail": ["shops", "stores", "retailer", "shoppers", "christmas", "discount", "supermarket", "clothing", "brand", "fashion", "spending", "high-street"],
        "startups": ["startup", "founders", "venture", "funding", "capital", "entrepreneur", "valuation", "ipo", "acquisition", "innovation", "incubator", "seed"],
    },
    "covid": {
        "vaccines": ["vaccine", "vaccinated", "vaccination", "dose", "booster", "pfizer", "moderna", "jab", "shot", "immunity", "antibodies"],
        "lockdown": ["lockdown", "quarantine", "restrictions", "curfew", "closed", "stayhome", "socialdistancing", "isolation", "travel", "ban"],
        "testing": ["test", "testing", "positive", "negative", "pcr", "results", "swab", "rapid", "screening", "diagnosed"],
        "hospitals": ["hospital", "icu", "nurses", "doctors", "ventilators", "patients", "beds", "frontline", "healthcare", "workers", "ward"],
    },
    "entertainment": {
        "music": ["album", "song", "band", "chart", "single", "rapper", "guitar", "grammy", "lyrics", "hit", "record", "studio"],
        "celebrity": ["wedding", "divorce", "couple", "baby", "red-carpet", "paparazzi", "gossip", "instagram", "model", "rumour"],
        "television": ["series", "episode", "channel", "bbc", "sitcom", "presenter", "viewers", "soap", "drama", "reality"],
        "awards": ["oscar", "bafta", "nominated", "nomination", "award", "ceremony", "winner", "trophy", "prize", "honour"],
    },
    "movie": {
        "horror": ["horror", "scary", "ghost", "haunted", "zombie", "blood", "terror", "creepy", "monster", "nightmare", "slasher"],
        "comedy": ["comedy", "funny", "laugh", "hilarious", "jokes", "comic", "humour", "silly", "gags", "witty"],
        "romance": ["romance", "love", "romantic", "couple", "kiss", "heart", "wedding", "lovers", "relationship", "passion"],
        "action": ["action", "explosions", "fight", "chase", "guns", "hero", "villain", "stunts", "car-chase", "martial"],
        "drama": ["drama", "emotional", "tragedy", "family", "grief", "moving", "tears", "struggle", "powerful", "life"],
        "scifi": ["sci-fi", "alien", "space", "future", "robots", "planet", "spaceship", "galaxy", "dystopian", "time-travel"],
    },
    "politics": {
        "elections": ["poll", "polls", "ballot", "voters", "turnout", "constituency", "seats", "candidates", "manifesto", "marginal"],
        "diplomacy": ["foreign", "summit", "treaty", "ambassador", "talks", "sanctions", "nato", "allies", "embassy", "diplomatic"],
        "parliament": ["commons", "lords", "bill", "law", "debate", "committee", "legislation", "speaker", "amendment", "reading"],
        "protest": ["protest", "protesters", "march", "rally", "strike", "unions", "police", "demonstration", "crowd", "activists"],
    },
    "sport": {
        "football": ["goal", "striker", "premiership", "midfielder", "penalty", "chelsea", "arsenal", "liverpool", "manchester", "keeper"],
        "tennis": ["wimbledon", "set", "serve", "grand-slam", "racket", "court", "federer", "nadal", "tiebreak", "baseline"],
        "motorsport": ["formula", "grand-prix", "driver", "lap", "pole", "circuit", "ferrari", "mclaren", "pit-stop", "racing"],
        "athletics": ["olympic", "sprint", "marathon", "medal", "record", "athletes", "relay", "hurdles", "doping", "stadium"],
    },
    "tech": {
        "smartphones": ["iphone", "android", "handset", "screen", "camera", "battery", "apple", "samsung", "apps", "gadget"],
        "ai": ["artificial", "intelligence", "machine", "learning", "robot", "algorithm", "neural", "automation", "chatbot", "smart"],
        "space": ["nasa", "rocket", "satellite", "orbit", "launch", "mars", "astronauts", "telescope", "spacex", "moon"],
        "cybersecurity": ["hackers", "virus", "malware", "security", "spam", "attack", "password", "phishing", "breach", "encryption"],
    },
}

HASHTAGS = ["covid19", "coronavirus", "staysafe", "wearamask", "pandemic", "lockdown", "vaccine", "health", "news"]
HANDLES = ["who", "cdcgov", "nhs", "healthnews", "dailyupdate", "drjones", "newsdesk", "govuk"]
